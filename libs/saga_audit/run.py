"""One audit: read both sides, complete what each list left out, compare."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from saga_audit.client import StaffApi
from saga_audit.compare import Drift, audit

DEFAULT_GRACE = timedelta(minutes=5)


@dataclass(frozen=True)
class Result:
    drift: list[Drift]
    orders: int
    reservations: int


def run_audit(
    api: StaffApi,
    *,
    grace: timedelta = DEFAULT_GRACE,
    shipped_since: datetime | None = None,
    now: datetime | None = None,
) -> Result:
    """Compare the orders that should have a reservation with the reservations that hold
    units, each completed from the other service: the reservations of orders not holding units
    any more (a SHIPPED one), the orders of reservations that are not in the first list (a
    CANCELLED one, or none at all)."""
    now = now or datetime.now(UTC)
    orders = api.orders(shipped_since=shipped_since)
    reservations = api.active_reservations()
    reservations.update(api.reservations_of(sorted(set(orders) - set(reservations))))
    for order_id in sorted(set(reservations) - set(orders)):
        order = api.order(order_id)
        if order is not None:
            orders[order_id] = order
    # Read after the lists: anything changed while they were read is within the grace.
    drift = audit(orders, reservations, now=now, grace=grace)
    return Result(drift, len(orders), len(reservations))
