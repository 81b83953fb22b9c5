"""``CONN_HEALTH_CHECKS`` on the services' PostgreSQL backend: no ``SELECT 1`` on a healthy idle
connection, and a session the server ended is still found and replaced (real PostgreSQL)."""

from __future__ import annotations

import select
import time
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection, connections

from service_runtime.postgresql.base import DatabaseWrapper

pytestmark = [pytest.mark.django_db(transaction=True)]

MARKER = "SELECT 'the last statement before the check'"


@pytest.fixture
def observer() -> Iterator[psycopg.Connection]:
    """A second session, to watch and end the first one from the server's side."""
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        yield other


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def _last_statement(observer: psycopg.Connection, pid: int) -> str:
    row = observer.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
    assert row is not None, f"backend {pid} is gone"
    return str(row[0])


def _check_as_a_request_does() -> None:
    """What Django does around a request: forget the last check, then check before a query."""
    connection.close_if_unusable_or_obsolete()
    connection.close_if_health_check_failed()


def test_the_services_use_this_backend_with_health_checks_on() -> None:
    assert isinstance(connections["default"], DatabaseWrapper)
    assert connection.settings_dict["ENGINE"] == "service_runtime.postgresql"
    assert connection.settings_dict["CONN_HEALTH_CHECKS"] is True


def test_a_healthy_idle_connection_is_checked_without_a_statement(
    observer: psycopg.Connection,
) -> None:
    pid = _backend_pid()
    with connection.cursor() as cursor:
        cursor.execute(MARKER)
    held = connection.connection
    _check_as_a_request_does()
    assert connection.connection is held  # kept
    assert _last_statement(observer, pid) == MARKER  # Django's own check would have run SELECT 1


def test_a_session_the_server_ended_is_replaced_before_the_next_query(
    observer: psycopg.Connection,
) -> None:
    pid = _backend_pid()
    held = connection.connection
    assert observer.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
    poller = select.poll()
    poller.register(held.fileno(), select.POLLIN)
    deadline = time.monotonic() + 5
    while not poller.poll(50):  # the server's goodbye reaches the socket
        assert time.monotonic() < deadline, "the terminated session never said so"
    _check_as_a_request_does()
    assert connection.connection is None  # closed by the check, not by a failed query
    assert _backend_pid() != pid  # a new session answers


def test_a_connection_left_in_a_transaction_gets_the_full_check(
    observer: psycopg.Connection,
) -> None:
    pid = _backend_pid()
    connection.connection.execute("BEGIN")  # behind Django's back, as a broken caller might
    try:
        assert connection.is_usable()
        assert _last_statement(observer, pid) == "SELECT 1"
    finally:
        connection.connection.execute("ROLLBACK")
