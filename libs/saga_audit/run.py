"""One audit: read both sides, complete what each list left out, compare."""

from __future__ import annotations

from collections.abc import Callable
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


def audit_as(
    *,
    orders_url: str,
    inventory_url: str,
    users_url: str,
    username: str,
    password: str,
    grace_seconds: float,
    shipped_days: float | None,
    answered: Callable[[], None] | None = None,
) -> Result:
    """Log in with a staff account and audit: what the command and the worker's job run.
    ``answered`` is called after each answer of a service."""
    api = StaffApi.login(
        orders_url=orders_url,
        inventory_url=inventory_url,
        users_url=users_url,
        username=username,
        password=password,
    )
    if answered is not None:
        api.answered = answered
    shipped_since = datetime.now(UTC) - timedelta(days=shipped_days) if shipped_days else None
    return run_audit(api, grace=timedelta(seconds=grace_seconds), shipped_since=shipped_since)
