"""How many rows the statements of a request read: for tests that pin a list's cost.

A list must not read a table that grows with use from end to end: its page and its count come
from an index, and stop after the rows they show. ``EXPLAIN ANALYZE`` says how many rows of each
table a statement read (returned by its scans, plus those a filter threw away), so a test can
bound it on a few thousand rows. It is asked with sequential scans discouraged: PostgreSQL then
takes an index whenever one can serve the statement, as it would on a large table (on a few
thousand rows reading a whole table can rightly be cheaper), and reads a whole table, or a
whole index, only when nothing better can serve the statement.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import connection

Statement = tuple[str, Sequence[Any] | dict[str, Any] | None]


@contextmanager
def statements() -> Iterator[list[Statement]]:
    """The statements run on the default connection inside the block, with their parameters."""
    run: list[Statement] = []

    def record(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        run.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield run


_SCANS = ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan")
_DISCARDED = ("Rows Removed by Filter", "Rows Removed by Index Recheck")


def rows_read(statement: Statement) -> dict[str, int]:
    """Rows read per table by the statement, run under ``EXPLAIN ANALYZE`` (so only for
    statements that change nothing), sequential scans discouraged."""
    sql, params = statement
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        try:
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
            row = cursor.fetchone()
        finally:
            cursor.execute("RESET enable_seqscan")
    assert row is not None
    document = json.loads(row[0]) if isinstance(row[0], str) else row[0]  # json may be text
    read: dict[str, int] = {}
    pending = [document[0]["Plan"]]
    while pending:
        node = pending.pop()
        pending.extend(node.get("Plans", []))
        if node["Node Type"] in _SCANS:
            rows = node["Actual Rows"] + sum(node.get(name, 0) for name in _DISCARDED)
            table = node["Relation Name"]
            read[table] = read.get(table, 0) + rows * node["Actual Loops"]
    return read


def most_rows_read(run: Sequence[Statement], table: str | None = None) -> int:
    """The most rows one of the statements read from one table (from ``table``, if given)."""
    return max(
        (
            rows
            for statement in run
            for name, rows in rows_read(statement).items()
            if table in (None, name)
        ),
        default=0,
    )


def prepared() -> list[tuple[str, int, int]]:
    """The default connection's prepared statements: each one's text (numbered, with the
    generation of its plans on its last line), and the generic and custom plans it was run on."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
            " ORDER BY prepare_time"
        )
        return [(row[0], row[1], row[2]) for row in cursor.fetchall()]


def plans_of(*beginnings: str) -> dict[str, tuple[int, int]]:
    """For each beginning that some prepared statements of the default connection start with
    (leading white space aside): the generic and the custom plans they were run on, summed."""
    found: dict[str, tuple[int, int]] = {}
    for statement, generic, custom in prepared():
        for beginning in beginnings:
            if statement.lstrip().startswith(beginning):
                before = found.get(beginning, (0, 0))
                found[beginning] = (before[0] + generic, before[1] + custom)
    return found
