"""What the audit checks, on what the two staff APIs answered: plain data in, drift out.

An order and its reservation agree when the reservation's status is the one the order's status
implies (below; a SHIPPED order whose rest was cancelled: RELEASED), it names the same products
and quantities, and it counts shipped exactly the units the order shipped (those units left
on-hand stock). A reservation that still holds units (RESERVED, PARTIALLY_SHIPPED, BACKORDERED)
needs an order that is neither CANCELLED nor REJECTED.
An order or reservation changed within the grace period is in flight: its events may not have
arrived yet, so it is not judged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

# The reservation status each order status implies (see expected_reservation); PENDING orders
# are the deadline job's.
EXPECTED_RESERVATION = {
    "CONFIRMED": "RESERVED",
    "BACKORDERED": "BACKORDERED",
    "PARTIALLY_SHIPPED": "PARTIALLY_SHIPPED",
    "SHIPPED": "SHIPPED",
}
ACTIVE_RESERVATION = frozenset({"RESERVED", "PARTIALLY_SHIPPED", "BACKORDERED"})
FINAL_WITHOUT_STOCK = frozenset({"CANCELLED", "REJECTED"})

# The kinds of drift, as the metric's label and the report's first word.
MISSING_RESERVATION = "missing_reservation"
STATUS_MISMATCH = "status_mismatch"
LINES_MISMATCH = "lines_mismatch"
SHIPPED_MISMATCH = "shipped_mismatch"
HELD_FOR_FINAL_ORDER = "held_for_final_order"
RESERVATION_WITHOUT_ORDER = "reservation_without_order"
KINDS = (
    MISSING_RESERVATION,
    STATUS_MISMATCH,
    LINES_MISMATCH,
    SHIPPED_MISMATCH,
    HELD_FOR_FINAL_ORDER,
    RESERVATION_WITHOUT_ORDER,
)

Record = Mapping[str, Any]  # an order or a reservation as its staff API shows it


@dataclass(frozen=True)
class Drift:
    kind: str
    order_id: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} order {self.order_id}: {self.detail}"


def ordered(order: Record) -> dict[int, int]:
    return _units((line["product_id"], line["quantity"]) for line in order["lines"])


def shipped_by_order(order: Record) -> dict[int, int]:
    return _units((line["product_id"], line.get("shipped_quantity", 0)) for line in order["lines"])


def reserved(reservation: Record) -> dict[int, int]:
    return _units((line["product_id"], line["quantity"]) for line in reservation["lines"])


def shipped_by_reservation(reservation: Record) -> dict[int, int]:
    entries = reservation["allocations"]
    return _units((entry["product_id"], entry.get("shipped", 0)) for entry in entries)


def _units(pairs: Iterable[tuple[int, int]]) -> dict[int, int]:
    units: Counter[int] = Counter()
    for product_id, quantity in pairs:
        units[int(product_id)] += int(quantity)
    return {product: count for product, count in units.items() if count}


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def expected_reservation(order: Record) -> str | None:
    """The reservation status the order's implies; None for an order not judged (PENDING,
    or final without stock). A SHIPPED order some of whose units were cancelled before they
    shipped (a partly shipped order whose rest was cancelled) has a RELEASED reservation."""
    status = order["status"]
    if status == "SHIPPED" and any(line.get("cancelled_quantity", 0) for line in order["lines"]):
        return "RELEASED"
    return EXPECTED_RESERVATION.get(status)


def in_flight(record: Record | None, since: datetime) -> bool:
    return record is not None and _moment(record["updated_at"]) >= since


def compare_order(order: Record, reservation: Record | None) -> list[Drift]:
    """The drift between an order (CONFIRMED, BACKORDERED, PARTIALLY_SHIPPED or SHIPPED) and
    what inventory holds for it."""
    order_id, status = str(order["id"]), order["status"]
    expected = expected_reservation(order)
    if expected is None:
        return []
    if reservation is None:
        return [Drift(MISSING_RESERVATION, order_id, f"{status} order has no reservation")]
    drift = []
    if reservation["status"] != expected:
        drift.append(
            Drift(
                STATUS_MISMATCH,
                order_id,
                f"{status} order, reservation {reservation['status']} (expected {expected})",
            )
        )
    if ordered(order) != reserved(reservation):
        drift.append(
            Drift(
                LINES_MISMATCH,
                order_id,
                f"order lines {_show(ordered(order))}, reservation lines "
                f"{_show(reserved(reservation))}",
            )
        )
    if shipped_by_order(order) != shipped_by_reservation(reservation):
        drift.append(
            Drift(
                SHIPPED_MISMATCH,
                order_id,
                f"order shipped {_show(shipped_by_order(order))}, stock that left "
                f"{_show(shipped_by_reservation(reservation))}",
            )
        )
    return drift


def compare_reservation(reservation: Record, order: Record | None) -> list[Drift]:
    """The drift of a reservation that holds units for an order that no longer wants them."""
    order_id = str(reservation["order_id"])
    if reservation["status"] not in ACTIVE_RESERVATION:
        return []
    if order is None:
        return [
            Drift(
                RESERVATION_WITHOUT_ORDER,
                order_id,
                f"{reservation['status']} reservation of an order the orders service lacks",
            )
        ]
    if order["status"] in FINAL_WITHOUT_STOCK:
        return [
            Drift(
                HELD_FOR_FINAL_ORDER,
                order_id,
                f"{reservation['status']} reservation still holds "
                f"{_show(reserved(reservation))} for a {order['status']} order",
            )
        ]
    return []


def audit(
    orders: Mapping[str, Record],
    reservations: Mapping[str, Record],
    *,
    now: datetime,
    grace: timedelta,
) -> list[Drift]:
    """Every drift between ``orders`` and ``reservations`` (each by order id), in order id
    order; what either side changed within ``grace`` of ``now`` is left out."""
    since = now - grace
    drift: list[Drift] = []
    for order_id in sorted(set(orders) | set(reservations)):
        order, reservation = orders.get(order_id), reservations.get(order_id)
        if in_flight(order, since) or in_flight(reservation, since):
            continue
        if order is not None:
            drift += compare_order(order, reservation)
        if reservation is not None:
            drift += compare_reservation(reservation, order)
    return drift


def _show(units: Mapping[int, int]) -> str:
    return "{" + ", ".join(f"{product}: {count}" for product, count in sorted(units.items())) + "}"
