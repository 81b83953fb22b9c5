"""A second version of stock.released for the tests of event versions: it adds ``partial``,
which version 1 can say only when it is false (a partial release has no v1 form)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from messaging import schemas, versions

V1 = schemas.EVENTS[("stock.released", 1)]
V2 = {
    **V1,
    "properties": {**V1["properties"], "partial": {"type": "boolean"}},
    "required": [*V1["required"], "partial"],
}


def _up(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "partial": False}


def _down(data: dict[str, Any]) -> dict[str, Any]:
    if data["partial"]:
        raise versions.NotExpressible("stock.released v1 has no partial release")
    return {key: value for key, value in data.items() if key != "partial"}


def register_released_v2(monkeypatch: pytest.MonkeyPatch, *, by_default: bool = False) -> None:
    monkeypatch.setitem(schemas.EVENTS, ("stock.released", 2), V2)
    monkeypatch.setitem(schemas._VALIDATORS, ("stock.released", 2), schemas._Validator(V2))
    change = versions.Change("stock.released", 2, _up, _down, published_by_default=by_default)
    monkeypatch.setitem(versions.CHANGES, ("stock.released", 2), change)


@pytest.fixture
def released_v2(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    register_released_v2(monkeypatch)
    yield
