"""The socket poll behind the backend's health check, and the settings that choose prepared
statements (no database needed)."""

from __future__ import annotations

import socket

import pytest
from django.core.exceptions import ImproperlyConfigured

from service_runtime.postgresql.base import quiet
from service_runtime.settings import database, prepare_threshold


def test_a_socket_with_nothing_to_read_is_quiet() -> None:
    mine, theirs = socket.socketpair()
    with mine, theirs:
        assert quiet(mine.fileno())


def test_a_socket_with_something_to_read_is_not() -> None:
    mine, theirs = socket.socketpair()
    with mine, theirs:
        theirs.sendall(b"E")
        assert not quiet(mine.fileno())


def test_a_socket_whose_peer_hung_up_is_not() -> None:
    mine, theirs = socket.socketpair()
    with mine:
        theirs.close()
        assert not quiet(mine.fileno())


@pytest.mark.parametrize(
    ("value", "threshold"),
    [(None, 5), ("", 5), ("3", 3), ("0", 0), ("off", None), ("OFF", None), ("none", None)],
)
def test_the_prepare_threshold_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str | None, threshold: int | None
) -> None:
    if value is None:
        monkeypatch.delenv("DATABASE_PREPARE_THRESHOLD", raising=False)
    else:
        monkeypatch.setenv("DATABASE_PREPARE_THRESHOLD", value)
    assert prepare_threshold() == threshold


@pytest.mark.parametrize("value", ["five", "-1", "2.5"])
def test_a_prepare_threshold_that_is_no_count_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("DATABASE_PREPARE_THRESHOLD", value)
    with pytest.raises(ImproperlyConfigured, match="DATABASE_PREPARE_THRESHOLD"):
        prepare_threshold()


def test_a_postgresql_database_prepares_what_it_repeats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shop")
    monkeypatch.delenv("DATABASE_PREPARE_THRESHOLD", raising=False)
    config = database("orders")
    assert config["ENGINE"] == "service_runtime.postgresql"
    assert config["OPTIONS"]["prepare_threshold"] == 5
    monkeypatch.setenv("DATABASE_PREPARE_THRESHOLD", "off")
    assert database("orders")["OPTIONS"]["prepare_threshold"] is None
