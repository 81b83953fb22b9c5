"""Event versions: consumers read the previous version too, producers publish what their
consumers read until told otherwise (messaging.versions)."""

from __future__ import annotations

import json
import uuid

import pytest

from messaging import schemas, versions
from messaging.envelope import Envelope, MalformedMessage, decode
from tests.versioning import register_released_v2, released_v2  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("released_v2")
ORDER = str(uuid.uuid4())
V1_DATA = {"order_id": ORDER, "reason": "cancelled by the customer"}


def body(version: int, data: dict) -> bytes:
    envelope = Envelope.new(
        "stock.released", data, source="inventory", correlation_id=ORDER, version=version
    )
    return envelope.to_json().encode()


def test_a_consumer_reads_the_previous_version_in_the_newest_shape() -> None:
    envelope = decode(body(1, V1_DATA))
    assert envelope.version == 2
    assert envelope.data == {**V1_DATA, "partial": False}


def test_the_newest_version_is_read_as_published() -> None:
    envelope = decode(body(2, {**V1_DATA, "partial": True}))
    assert (envelope.version, envelope.data["partial"]) == (2, True)


def test_each_version_is_checked_against_its_own_schema() -> None:
    raw = json.loads(body(1, V1_DATA))
    raw["data"]["partial"] = False  # a v2 field in a v1 payload
    with pytest.raises(MalformedMessage, match=r"stock\.released v1 payload invalid"):
        decode(json.dumps(raw).encode())
    raw["version"] = 3  # a version this code does not know yet
    with pytest.raises(MalformedMessage, match=r"unknown event type .stock\.released. version 3"):
        decode(json.dumps(raw).encode())


def test_a_producer_keeps_publishing_the_previous_version_until_told() -> None:
    newest = {**V1_DATA, "partial": False}
    assert versions.for_publishing("stock.released", newest, {}) == (1, V1_DATA)
    pinned = {"stock.released": 2}
    assert versions.for_publishing("stock.released", newest, pinned) == (2, newest)
    assert versions.for_publishing("stock.released", newest, versions.LATEST) == (2, newest)
    # other event types are not touched by a pin on this one
    assert versions.version_to_publish("order.created", pinned) == 1


def test_a_change_published_by_default_is_published_without_a_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    register_released_v2(monkeypatch, by_default=True)
    assert versions.version_to_publish("stock.released", {}) == 2
    assert versions.version_to_publish("stock.released", {"stock.released": 1}) == 1


def test_what_the_older_version_cannot_say_is_refused_not_published_wrongly() -> None:
    with pytest.raises(versions.NotExpressible, match="no partial release"):
        versions.for_publishing("stock.released", {**V1_DATA, "partial": True}, {})


@pytest.mark.parametrize(
    ("text", "pins"),
    [
        ("", {}),
        ("  ", {}),
        ("latest", versions.LATEST),
        ("LATEST", versions.LATEST),
        ("stock.released=2", {"stock.released": 2}),
        (" stock.released = 1 , order.created=1 ,", {"stock.released": 1, "order.created": 1}),
    ],
)
def test_the_setting_is_read(text: str, pins: object) -> None:
    assert versions.parse_setting(text) == pins


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("stock.released", "is not type=version"),
        ("stock.released=two", "is not type=version"),
        ("stock.released=3", "stock.released v3 has no schema"),
        ("no.such_event=1", "no.such_event v1 has no schema"),
    ],
)
def test_a_wrong_setting_is_refused_with_its_reason(text: str, says: str) -> None:
    with pytest.raises(versions.BadVersionSetting, match=says):
        versions.parse_setting(text)


def test_a_change_needs_both_schemas() -> None:
    def same(data: dict) -> dict:
        return data

    with pytest.raises(ValueError, match=r"stock\.released v3 has no schema"):
        versions.register(versions.Change("stock.released", 3, same, same))
    assert ("stock.released", 3) not in versions.CHANGES
    assert schemas.current_version("stock.released") == 2


def test_a_wrong_setting_stops_the_service_at_start(settings: object) -> None:
    from django.apps import apps
    from django.core.exceptions import ImproperlyConfigured

    settings.MESSAGING_EVENT_VERSIONS = "stock.released=7"  # type: ignore[attr-defined]
    with pytest.raises(ImproperlyConfigured, match=r"stock\.released v7 has no schema"):
        apps.get_app_config("messaging").ready()
