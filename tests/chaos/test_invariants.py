"""The invariant checker itself: a consistent world passes, and each kind of damage is caught.

No servers: :func:`tests.chaos.invariants.check` works on the rows the suite reads; one query
whose grouping is the point runs on the local PostgreSQL, on a temporary table.
"""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from devstack.stack import LOCAL_POSTGRES
from tests.chaos.driver import Accepted
from tests.chaos.invariants import QUERIES, SERVICES, check, dead_letter_problems

CONFIRMED = str(uuid.uuid4())
REJECTED = str(uuid.uuid4())
SHIPPED = str(uuid.uuid4())
CANCELLED = str(uuid.uuid4())  # confirmed, then cancelled
USER = 7
STOCK = {1: 10, 2: 5}


def world() -> dict[str, list[tuple[Any, ...]]]:
    """Two products (10 and 5 given): one order confirmed (3 of 1), one rejected (9 of 2), one
    shipped (2 of 1, 1 of 2), one confirmed then cancelled (4 of 2)."""
    rows: dict[str, list[tuple[Any, ...]]] = {
        "orders": [
            (CONFIRMED, USER, "CONFIRMED"),
            (REJECTED, USER, "REJECTED"),
            (SHIPPED, USER, "SHIPPED"),
            (CANCELLED, USER, "CANCELLED"),
        ],
        "order_lines": [
            (CONFIRMED, 1, 3),
            (REJECTED, 2, 9),
            (SHIPPED, 1, 2),
            (SHIPPED, 2, 1),
            (CANCELLED, 2, 4),
        ],
        "transitions": [
            (CONFIRMED, "PENDING", "CONFIRMED"),
            (REJECTED, "PENDING", "REJECTED"),
            (SHIPPED, "PENDING", "CONFIRMED"),
            (SHIPPED, "CONFIRMED", "SHIPPED"),
            (CANCELLED, "PENDING", "CONFIRMED"),
            (CANCELLED, "CONFIRMED", "CANCELLED"),
        ],
        "reservations": [
            (CONFIRMED, "RESERVED", [{"product_id": 1, "quantity": 3}]),
            (REJECTED, "REJECTED", [{"product_id": 2, "quantity": 9}]),
            (
                SHIPPED,
                "SHIPPED",
                [{"product_id": 1, "quantity": 2}, {"product_id": 2, "quantity": 1}],
            ),
            (CANCELLED, "RELEASED", [{"product_id": 2, "quantity": 4}]),
        ],
        # product 1: 10 given, 2 shipped -> on hand 8, 3 reserved; product 2: 5 - 1 -> 4, 0
        "stock_levels": [(1, 8, 3), (2, 4, 0)],
        "ledger_sums": [(1, 8, 3), (2, 4, 0)],
        "ledger_repeats": [],
        "notifications": [
            (USER, CONFIRMED, "order_confirmed"),
            (USER, REJECTED, "order_rejected"),
            (USER, SHIPPED, "order_confirmed"),
            (USER, SHIPPED, "order_shipped"),
            (USER, CANCELLED, "order_confirmed"),
            (USER, CANCELLED, "order_cancelled"),
            (USER, CANCELLED, "order_created"),  # kinds the checker does not know are fine
        ],
        "orders_events": [],
        "inventory_events": [],
    }
    for service in SERVICES:
        rows[f"unsent {service}"] = [(0,)]
        rows[f"inbox repeats {service}"] = []
    return rows


def accepted() -> dict[str, Accepted]:
    now = datetime.now(UTC)
    return {oid: Accepted(oid, USER, [], now) for oid in (CONFIRMED, REJECTED, SHIPPED, CANCELLED)}


def run(rows: dict[str, list[tuple[Any, ...]]], **overrides: Any) -> Any:
    arguments: dict[str, Any] = {
        "accepted": accepted(),
        "stock_given": STOCK,
        "queued": {"x.inventory": 0, "x.inventory.dlq": 3},
    }
    return check(rows, **{**arguments, **overrides})


def test_a_consistent_world_passes() -> None:
    findings = run(world())
    assert findings.violations() == []
    assert findings.settled
    assert (findings.accepted, findings.final, findings.lost) == (4, 4, 0)


def damaged(change: str) -> dict[str, list[tuple[Any, ...]]]:
    rows = copy.deepcopy(world())
    if change == "pending":
        rows["orders"][0] = (CONFIRMED, USER, "PENDING")
    elif change == "reservation released but order confirmed":
        rows["reservations"][0] = (CONFIRMED, "RELEASED", rows["reservations"][0][2])
    elif change == "notification missing":
        rows["notifications"].remove((USER, REJECTED, "order_rejected"))
    elif change == "reserved counter off":
        rows["stock_levels"][0] = (1, 8, 4)
        rows["ledger_sums"][0] = (1, 8, 4)
    elif change == "ledger disagrees":
        rows["ledger_sums"][1] = (2, 5, 0)
    elif change == "reservation twice":
        rows["reservations"].append(rows["reservations"][0])
    elif change == "ledger move twice":
        rows["ledger_repeats"].append((CONFIRMED, 1, "reserve", 2))
    elif change == "notification twice":
        rows["notifications"].append((USER, CONFIRMED, "order_confirmed"))
    elif change == "transition twice":
        rows["transitions"].append((CONFIRMED, "PENDING", "CONFIRMED"))
    elif change == "outbox not drained":
        rows["unsent orders"] = [(2,)]
    return rows


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("pending", "not_final=1"),
        ("reservation released but order confirmed", "reservation_mismatch=1"),
        ("notification missing", "notification_missing=1"),
        ("reserved counter off", "reserved_mismatch=1"),
        ("ledger disagrees", "ledger_mismatch=1"),
        ("reservation twice", "duplicate reservation=1"),
        ("ledger move twice", "duplicate ledger reserve=1"),
        ("notification twice", "duplicate notification=1"),
        ("transition twice", "duplicate order transition=1"),
        ("outbox not drained", "outbox unsent orders=2"),
    ],
)
def test_each_kind_of_damage_is_caught(change: str, expected: str) -> None:
    assert expected in run(damaged(change)).violations()


def test_an_accepted_order_missing_from_the_database_is_lost() -> None:
    extra = str(uuid.uuid4())
    orders = {**accepted(), extra: Accepted(extra, USER, [], datetime.now(UTC))}
    findings = run(world(), accepted=orders)
    assert findings.accepted_missing == 1
    assert findings.lost == 1


def test_overselling_is_counted_in_units() -> None:
    findings = run(world(), stock_given={1: 4, 2: 5})  # 3 confirmed + 2 shipped of product 1
    assert findings.oversold == 1


def test_a_message_left_in_a_queue_keeps_the_system_unsettled() -> None:
    findings = run(world(), queued={"x.orders": 1, "x.orders.dlq": 5})
    assert not findings.settled
    assert findings.violations() == ["queued x.orders=1"]


def test_dead_letter_queues_must_hold_exactly_the_injected_poison() -> None:
    assert dead_letter_problems({"q.dlq": ["a", "b"]}, {"q.dlq": ["b", "a"]}) == []
    assert dead_letter_problems({"q.dlq": ["a", "b", None]}, {"q.dlq": ["a", "b"]}) == [
        "q.dlq: 1 unexpected (['None'])"
    ]
    assert dead_letter_problems({"q.dlq": ["a"]}, {"q.dlq": ["a", "b"]}) == [
        "q.dlq: 1 injected but absent"
    ]


def test_a_second_order_under_an_accepted_requests_key_is_a_duplicate() -> None:
    """A retried request (the web server killed between committing and answering) must be
    answered with the order the first attempt made, not make another."""
    orders = {oid: Accepted(oid, USER, [], datetime.now(UTC), f"key-{oid}") for oid in accepted()}
    rows = world()
    rows["order_keys"] = [(oid, f"key-{oid}") for oid in orders]
    assert run(rows, accepted=orders).violations() == []
    second = str(uuid.uuid4())
    rows["order_keys"].append((second, f"key-{CONFIRMED}"))
    findings = run(rows, accepted=orders)
    assert "duplicate order per Idempotency-Key=1" in findings.violations()
    assert findings.duplicate_effects == 1


def test_order_shipped_is_a_duplicate_only_within_one_shipment() -> None:
    """The suite's own query, on PostgreSQL: an order shipped in two shipments (held in two
    warehouses) sent two events, not a duplicate; two copies of one shipment's event, or of a
    version-1 event (no shipment id), and of an outcome, are."""
    events = [
        ("order.shipped", "two-shipments", '{"data": {"shipment_id": 19}}'),
        ("order.shipped", "two-shipments", '{"data": {"shipment_id": 20}}'),
        ("order.shipped", "copied", '{"data": {"shipment_id": 21}}'),
        ("order.shipped", "copied", '{"data": {"shipment_id": 21}}'),
        ("order.shipped", "version-1", '{"data": {"order_id": "version-1"}}'),
        ("order.shipped", "version-1", '{"data": {"order_id": "version-1"}}'),
        ("order.confirmed", "confirmed", '{"data": {}}'),
        ("order.confirmed", "confirmed", '{"data": {}}'),
        ("order.confirmed", "once", '{"data": {}}'),
    ]
    with psycopg.connect(LOCAL_POSTGRES, autocommit=True) as connection:
        # A temporary table of that name comes first in the search path: the query reads it.
        connection.execute(
            "CREATE TEMPORARY TABLE messaging_outboxmessage "
            "(routing_key text, correlation_id text, body text)"
        )
        with connection.cursor() as cursor:
            cursor.executemany("INSERT INTO messaging_outboxmessage VALUES (%s, %s, %s)", events)
        found = connection.execute(QUERIES["orders_events"][1]).fetchall()
    assert sorted(found) == [
        ("order.confirmed", "confirmed", 2),
        ("order.shipped", "copied", 2),
        ("order.shipped", "version-1", 2),
    ]
