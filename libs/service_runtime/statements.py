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

Prepared (``prepared=True``): a hot statement whose parameters the planner cannot look into
anyway (rows given as one JSON document, ids as one array) is prepared once per connection and
runs on its generic plan, planned once instead of on every call. Planning is most of what
PostgreSQL spends on such a statement: the order's statement took 0.90 ms of the server's CPU
planned each time, 0.39 ms on its generic plan (``reports/bench-changes.md``). Only these
statements are prepared (the connection's ``prepare_threshold`` is never reached by a count) and
only prepared statements use generic plans (``plan_cache_mode``, set by
``service_runtime.settings``), so every other statement is planned for its values as before.

A generic plan is made for the tables as they are when it is made, and kept: one made while a
table was nearly empty scans it whole, and would go on doing so as it grows wherever statistics
are not refreshed (autovacuum's ``ANALYZE`` invalidates it). So each process plans its prepared
statements again as it ages: when it is 1, 2, 4, ... 512 seconds old, then every 512 seconds
(:func:`plan_generation`; the older plans are dropped as the connection's ``prepared_max`` is
reached). ``DATABASE_PREPARED_STATEMENTS=0`` turns preparing off (behind a transaction-pooling
PgBouncer older than 1.21).
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from psycopg import RawCursor
from psycopg.pq import ExecStatus

_PLACEHOLDER = "%s"
_TUPLES_OK = ExecStatus.TUPLES_OK
_NAMED = re.compile(r"%\(([A-Za-z_][A-Za-z0-9_]*)\)s")

# A process's prepared statements are planned again when it is 1, 2, 4 ... this many seconds
# old, then every this many seconds.
_LAST_DOUBLING_SECONDS = 512
_BORN = time.monotonic()


@functools.lru_cache(maxsize=1024)
def numbered(sql: str) -> str:
    """``sql`` with its ``%s`` placeholders numbered ``$1, $2, ...`` in order.

    Only plain ``%s`` placeholders: a statement with any other ``%`` (a named placeholder, an
    escaped ``%%``, a ``LIKE`` pattern) is refused, as its numbering could be wrong."""
    first, *rest = sql.split(_PLACEHOLDER)
    if "%" in first or any("%" in piece for piece in rest):
        raise ValueError(f"only %s placeholders can be numbered: {sql[:200]!r}")
    return first + "".join(f"${index}{piece}" for index, piece in enumerate(rest, 1))


@functools.lru_cache(maxsize=256)
def numbered_by_name(sql: str) -> tuple[str, tuple[str, ...]]:
    """``sql`` with its ``%(name)s`` placeholders numbered ``$1, $2, ...`` (a name used twice
    keeps its number), and the names in the order of their numbers.

    Only named placeholders: any other ``%`` is refused, as its numbering could be wrong."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    pieces = _NAMED.split(sql)
    if any("%" in piece for piece in pieces[::2]):
        raise ValueError(f"only %(name)s placeholders can be numbered: {sql[:200]!r}")
    return _NAMED.sub(number, sql), tuple(names)


def plan_generation(age: float | None = None) -> int:
    """Which plans a prepared statement uses in a process ``age`` seconds old (its own age by
    default): a new number each time they are made again (see the module's docstring)."""
    if age is None:
        age = time.monotonic() - _BORN
    if age < 2 * _LAST_DOUBLING_SECONDS:
        return int(age).bit_length()  # below 1 s: 0; 1 s: 1; 2-3 s: 2; 4-7 s: 3 ...
    # From twice the last doubling on, one more every _LAST_DOUBLING_SECONDS.
    return _LAST_DOUBLING_SECONDS.bit_length() - 1 + int(age // _LAST_DOUBLING_SECONDS)


def execute(
    sql: str, params: Sequence[Any] | Mapping[str, Any], *, prepared: bool = False
) -> list[tuple[Any, ...]]:
    """Run ``sql`` with ``params`` on the default database; the rows it returns (none for a
    statement without ``RETURNING`` or a result).

    Placeholders are all ``%s`` with a sequence of parameters, or all ``%(name)s`` with a
    mapping. ``prepared``: run it prepared, on its generic plan (see the module's docstring).
    Django's execute wrappers see a statement with named placeholders as written, with its
    mapping; one with ``%s`` placeholders numbered.

    The connection is looked up once per call: ``django.db.connection`` finds the thread's
    connection again on every attribute read, which cost a hot path dozens of lookups per
    message when each statement read it a dozen times."""
    db = connections[DEFAULT_DB_ALIAS]
    if not _sent_as_written(db):
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description is not None else []
    statement = sql if isinstance(params, Mapping) else numbered(sql)
    with _raw_cursor(db, _PreparingCursor if prepared else _Cursor) as cursor:
        cursor.execute(statement, params)
        # What the statement answered, without building the columns' description to ask.
        result = cursor.cursor.pgresult
        return cursor.fetchall() if result is not None and result.status == _TUPLES_OK else []


class _Cursor(RawCursor):
    """psycopg's ``RawCursor`` (``$1`` placeholders, a sequence of parameters), which also
    takes ``%(name)s`` placeholders with a mapping: numbered here, once per text."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        return super().execute(*_positional(query, params), **kwargs)


class _PreparingCursor(_Cursor):
    """The same, preparing what it runs (unless preparing is turned off); planned again as
    the process ages."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        if self.connection.prepare_threshold is None:
            return super().execute(query, params, **kwargs)
        query, params = _positional(query, params)
        query = _of_generation(query, plan_generation())
        return super().execute(query, params, **{**kwargs, "prepare": True})


def _positional(query: Any, params: Any) -> tuple[Any, Any]:
    """A statement with ``%(name)s`` placeholders and its mapping as numbered ``$n`` and a
    list; any other statement as it is."""
    if isinstance(params, Mapping):
        query, names = numbered_by_name(query)
        return query, [params[name] for name in names]
    return query, params


@functools.lru_cache(maxsize=256)
def _of_generation(statement: str, generation: int) -> str:
    """``statement`` tagged with the generation of its plans: a new text each generation, so
    psycopg prepares it anew and PostgreSQL plans it anew. One string per pair, so that the
    text is not built (and hashed) again on every call."""
    return f"{statement}\n-- plans {generation}"


def _raw_cursor(db: BaseDatabaseWrapper, kind: type[_Cursor]) -> CursorWrapper:
    """What ``db.cursor()`` gives, on ``kind`` of psycopg's ``RawCursor`` instead of Django's
    own cursor."""
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    with db.wrap_database_errors:
        return CursorWrapper(kind(db.connection), db)


def _sent_as_written(db: BaseDatabaseWrapper) -> bool:
    return (
        db.vendor == "postgresql"
        and bool(getattr(db.features, "uses_server_side_binding", False))
        and not db.queries_logged
    )
