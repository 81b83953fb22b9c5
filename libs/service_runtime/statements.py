"""Statements with many parameters, sent without psycopg parsing them again on every call.

psycopg turns a statement's ``%s`` placeholders into PostgreSQL's ``$1, $2, ...`` before each
execution and keeps the result only for statements of at most 50 parameters and 4,096
characters. A batch's multi-row statements have more (an outbox row has 9 columns, an inbox row
4, a batch up to the prefetch of rows), so each was parsed anew on every call: 15 % of the
orders worker's CPU and 9 % of inventory's while they drained a backlog
(``reports/bench-changes.md``). :func:`execute` numbers such a statement once per text and runs
it on psycopg's ``RawCursor``, which sends it as written.

Everywhere else the statement goes through Django's cursor as written: on SQLite, with
client-side binding (``DATABASE_SERVER_SIDE_BINDING=0``), and while Django logs the queries
(``DEBUG``, ``assertNumQueries``), whose log renders the statement from its ``%s`` text. Either
way it runs in the caller's transaction, if any, with Django's error wrapping and execute
wrappers.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.backends.utils import CursorWrapper
from psycopg import RawCursor

_PLACEHOLDER = "%s"


@functools.lru_cache(maxsize=1024)
def numbered(sql: str) -> str:
    """``sql`` with its ``%s`` placeholders numbered ``$1, $2, ...`` in order.

    Only plain ``%s`` placeholders: a statement with any other ``%`` (a named placeholder, an
    escaped ``%%``, a ``LIKE`` pattern) is refused, as its numbering could be wrong."""
    first, *rest = sql.split(_PLACEHOLDER)
    if "%" in first or any("%" in piece for piece in rest):
        raise ValueError(f"only %s placeholders can be numbered: {sql[:200]!r}")
    return first + "".join(f"${index}{piece}" for index, piece in enumerate(rest, 1))


def execute(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Run ``sql`` (``%s`` placeholders only) with ``params`` on the default database; the rows
    it returns (none for a statement without ``RETURNING`` or a result)."""
    if _sent_as_written():
        statement, cursor = numbered(sql), _raw_cursor()
    else:
        statement, cursor = sql, connection.cursor()
    with cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description is not None else []


def _raw_cursor() -> CursorWrapper:
    """What ``connection.cursor()`` gives, on psycopg's ``RawCursor`` instead of Django's own."""
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        return CursorWrapper(RawCursor(connection.connection), connection)


def _sent_as_written() -> bool:
    return (
        connection.vendor == "postgresql"
        and bool(getattr(connection.features, "uses_server_side_binding", False))
        and not connection.queries_logged
    )
