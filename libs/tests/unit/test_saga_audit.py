"""The audit's comparison, on records shaped as the staff APIs answer them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from saga_audit.compare import (
    HELD_FOR_FINAL_ORDER,
    LINES_MISMATCH,
    MISSING_RESERVATION,
    RESERVATION_WITHOUT_ORDER,
    SHIPPED_MISMATCH,
    STATUS_MISMATCH,
    audit,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LONG_AGO = (NOW - timedelta(hours=1)).isoformat()
GRACE = timedelta(minutes=5)


def order(status: str, *, shipped: int = 0, at: str = LONG_AGO, **extra: Any) -> dict[str, Any]:
    line = {"product_id": 7, "quantity": 3, "shipped_quantity": shipped}
    return {"id": "o1", "status": status, "lines": [line], "updated_at": at, **extra}


def reservation(status: str, *, shipped: int = 0, quantity: int = 3) -> dict[str, Any]:
    return {
        "order_id": "o1",
        "status": status,
        "lines": [{"product_id": 7, "quantity": quantity}],
        "allocations": [
            {"product_id": 7, "warehouse_id": 1, "quantity": 2, "shipped": min(shipped, 2)},
            {"product_id": 7, "warehouse_id": 2, "quantity": 1, "shipped": max(shipped - 2, 0)},
        ],
        "updated_at": LONG_AGO,
    }


def kinds(orders: list[dict[str, Any]], reservations: list[dict[str, Any]]) -> list[str]:
    found = audit(
        {o["id"]: o for o in orders},
        {r["order_id"]: r for r in reservations},
        now=NOW,
        grace=GRACE,
    )
    return [drift.kind for drift in found]


def test_sides_that_agree_have_no_drift() -> None:
    assert kinds([order("CONFIRMED")], [reservation("RESERVED")]) == []
    assert kinds([order("BACKORDERED")], [reservation("BACKORDERED")]) == []
    assert (
        kinds(
            [order("PARTIALLY_SHIPPED", shipped=2)], [reservation("PARTIALLY_SHIPPED", shipped=2)]
        )
        == []
    )
    assert kinds([order("SHIPPED", shipped=3)], [reservation("SHIPPED", shipped=3)]) == []
    assert kinds([order("CANCELLED")], [reservation("RELEASED")]) == []
    # Two units shipped, the last one cancelled: the order is SHIPPED, what was held released.
    rest_cancelled = order("SHIPPED", shipped=2)
    rest_cancelled["lines"][0]["cancelled_quantity"] = 1
    assert kinds([rest_cancelled], [reservation("RELEASED", shipped=2)]) == []
    assert kinds([rest_cancelled], [reservation("SHIPPED", shipped=2)]) == [STATUS_MISMATCH]
    assert kinds([order("PENDING")], [reservation("RESERVED")]) == []  # the deadline's


def test_each_kind_of_drift() -> None:
    assert kinds([order("CONFIRMED")], []) == [MISSING_RESERVATION]
    assert kinds([order("CONFIRMED")], [reservation("RESERVED", quantity=4)]) == [LINES_MISMATCH]
    assert kinds([order("BACKORDERED")], [reservation("RESERVED")]) == [STATUS_MISMATCH]
    assert kinds([order("SHIPPED", shipped=3)], [reservation("SHIPPED", shipped=2)]) == [
        SHIPPED_MISMATCH
    ]
    assert kinds([order("PARTIALLY_SHIPPED", shipped=1)], [reservation("RESERVED")]) == [
        STATUS_MISMATCH,
        SHIPPED_MISMATCH,
    ]
    assert kinds([order("REJECTED")], [reservation("BACKORDERED")]) == [HELD_FOR_FINAL_ORDER]
    assert kinds([], [reservation("PARTIALLY_SHIPPED")]) == [RESERVATION_WITHOUT_ORDER]
    assert kinds([], [reservation("RELEASED")]) == []


def test_what_changed_within_the_grace_is_in_flight() -> None:
    recent = (NOW - timedelta(minutes=1)).isoformat()
    assert kinds([order("CONFIRMED", at=recent)], []) == []
    fresh = {**reservation("RESERVED"), "updated_at": recent}
    assert kinds([order("CANCELLED")], [fresh]) == []
