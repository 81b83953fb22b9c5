"""Numbering a statement's %s placeholders for psycopg's RawCursor (no database needed)."""

from __future__ import annotations

import pytest

from service_runtime.statements import numbered


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", "SELECT 1"),
        ("SELECT %s", "SELECT $1"),
        (
            "INSERT INTO t (a, b) VALUES (%s, %s), (%s, %s) RETURNING a",
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) RETURNING a",
        ),
        (
            "UPDATE t SET a = %s WHERE id = ANY(%s::uuid[])",
            "UPDATE t SET a = $1 WHERE id = ANY($2::uuid[])",
        ),
        ("%s%s", "$1$2"),
    ],
)
def test_placeholders_are_numbered_in_order(sql: str, expected: str) -> None:
    assert numbered(sql) == expected


def test_the_tenth_placeholder_and_beyond_keep_their_numbers() -> None:
    sql = "VALUES " + ", ".join(["(%s)"] * 12)
    assert numbered(sql) == "VALUES " + ", ".join(f"(${i})" for i in range(1, 13))


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT %(name)s",
        "SELECT '100%%' || %s",
        "SELECT * FROM t WHERE a LIKE 'x%' AND b = %s",
        "SELECT %d",
    ],
)
def test_any_other_percent_sign_is_refused(sql: str) -> None:
    with pytest.raises(ValueError, match="only %s placeholders"):
        numbered(sql)
