"""Numbering a statement's placeholders for psycopg's RawCursor (no database needed)."""

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
def test_positional_placeholders_are_numbered_in_order(sql: str, expected: str) -> None:
    assert numbered(sql) == (expected, ())


def test_the_tenth_placeholder_and_beyond_keep_their_numbers() -> None:
    sql = "VALUES " + ", ".join(["(%s)"] * 12)
    assert numbered(sql) == ("VALUES " + ", ".join(f"(${i})" for i in range(1, 13)), ())


def test_named_placeholders_are_numbered_by_first_use_and_a_name_used_twice_keeps_its_number() -> (
    None
):
    sql = "SELECT %(b)s, %(a)s FROM t WHERE x = %(b)s AND y = ANY(%(c_2)s::int[])"
    assert numbered(sql) == (
        "SELECT $1, $2 FROM t WHERE x = $1 AND y = ANY($3::int[])",
        ("b", "a", "c_2"),
    )


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT '100%%' || %s",
        "SELECT * FROM t WHERE a LIKE 'x%' AND b = %s",
        "SELECT %d",
        "SELECT %s, %(name)s",
        "SELECT %(name)",
    ],
)
def test_any_other_percent_sign_is_refused(sql: str) -> None:
    with pytest.raises(ValueError, match="placeholders can be numbered"):
        numbered(sql)
