"""Numbering a statement's %s placeholders for psycopg's RawCursor (no database needed)."""

from __future__ import annotations

import pytest

from service_runtime.statements import numbered, numbered_by_name, plan_generation


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


def test_named_placeholders_are_numbered_in_order_of_first_use() -> None:
    sql = "SELECT %(a)s, %(b)s::jsonb, %(a)s WHERE x = ANY(%(ids)s::bigint[])"
    assert numbered_by_name(sql) == (
        "SELECT $1, $2::jsonb, $1 WHERE x = ANY($3::bigint[])",
        ("a", "b", "ids"),
    )


@pytest.mark.parametrize("sql", ["SELECT %(a)s, %s", "SELECT '100%%', %(a)s", "SELECT %(a)d"])
def test_any_other_percent_sign_is_refused_beside_named_placeholders(sql: str) -> None:
    with pytest.raises(ValueError, match=r"only %\(name\)s placeholders"):
        numbered_by_name(sql)


@pytest.mark.parametrize(
    ("age", "generation"),
    [
        (0.0, 0),
        (0.99, 0),
        (1.0, 1),
        (1.99, 1),
        (2.0, 2),
        (3.5, 2),
        (4.0, 3),
        (511.0, 9),
        (512.0, 10),
        (1023.9, 10),
        (1024.0, 11),
        (1535.9, 11),
        (1536.0, 12),
        (86_400.0, 177),
    ],
)
def test_plans_are_made_again_at_each_doubling_of_age_then_every_512_seconds(
    age: float, generation: int
) -> None:
    assert plan_generation(age) == generation


def test_the_plans_never_go_back_to_an_older_generation() -> None:
    generations = [plan_generation(tenth / 10) for tenth in range(40_000)]
    assert generations == sorted(generations)
