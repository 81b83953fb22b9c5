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


REPEATED = "SELECT count(*) FROM pg_class WHERE relname = %s"


def _prepared(cursor_owner: DatabaseWrapper) -> list[str]:
    with cursor_owner.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [str(row[0]) for row in cursor.fetchall()]


def _plan_cache_mode(cursor_owner: DatabaseWrapper) -> str:
    with cursor_owner.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        return str(cursor.fetchone()[0])


def test_a_statement_run_often_is_prepared_and_still_planned_for_its_parameters() -> None:
    assert connection.settings_dict["OPTIONS"]["prepare_threshold"] == 5
    connection.ensure_connection()
    for _ in range(6):
        with connection.cursor() as cursor:
            cursor.execute(REPEATED, ["pg_class"])
    assert any("FROM pg_class WHERE relname = $1" in text for text in _prepared(connection))
    assert _plan_cache_mode(connection) == "force_custom_plan"


def test_with_prepared_statements_off_nothing_is_prepared_and_plans_are_the_servers_choice() -> (
    None
):
    settings_dict = {
        **connection.settings_dict,
        "OPTIONS": {**connection.settings_dict["OPTIONS"], "prepare_threshold": None},
    }
    other = DatabaseWrapper(settings_dict, alias="unprepared")
    try:
        for _ in range(6):
            with other.cursor() as cursor:
                cursor.execute(REPEATED, ["pg_class"])
        assert _prepared(other) == []
        assert _plan_cache_mode(other) == "auto"
    finally:
        other.close()
