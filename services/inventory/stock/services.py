"""Every change to stock: counters, ledger, reservations and the events they announce, together.

The handlers' services use ``atomic(savepoint=False)``: they run inside the consumer's
transaction, which is already the unit of work, and a savepoint would cost two round trips per
message while rolling back nothing that the outer transaction does not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from django.db import transaction

from errors import ErrorCode
from messaging.envelope import Envelope
from messaging.outbox import publish_event
from service_runtime.errors import refused
from stock import movements
from stock.availability import (
    Offer,
    crossed_low_threshold,
    merge_lines,
    rejection_reason,
    shortfalls,
)
from stock.models import Reservation, StockLedgerEntry, StockLevel

logger = logging.getLogger(__name__)


class ReservationMissing(Exception):
    """An order inventory has never reserved anything for."""


def stock_level_create(*, product_id: int) -> StockLevel:
    """The counters of a new product, at zero."""
    return StockLevel.objects.create(product_id=product_id)


@transaction.atomic(savepoint=False)
def stock_reserve(
    *, order_id: str, user_id: int, lines: Iterable[Mapping[str, int]], causation: Envelope
) -> Reservation:
    """Reserve every line of an order, or none, and announce which it was.

    A successful reservation is three statements (PostgreSQL): lock the levels, write the
    reservation with its counters and ledger, write the event to the outbox. An order seen
    before (a duplicate, or a tombstone left by an early cancel) is recognised by the unique
    order id when its reservation is written, and then changes nothing.
    """
    wanted = merge_lines(lines)
    levels = movements.lock_levels(wanted)
    offers = {pid: Offer(level.available, level.active) for pid, level in levels.items()}
    found = shortfalls(wanted, offers)
    if found:
        reason = rejection_reason(found, len(wanted))
        rejected = movements.record_rejection(
            wanted, order_id=order_id, user_id=user_id, reason=reason
        )
        if rejected is None:
            return _already_seen(order_id)
        data = {
            "order_id": order_id,
            "reason": reason,
            "lines": [shortfall.as_event_line() for shortfall in found],
        }
        publish_event(
            "stock.rejected", data, correlation_id=causation.correlation_id, causation=causation
        )
        logger.info("order %s rejected: %s", order_id, reason)
        return rejected

    before = {pid: level.available for pid, level in levels.items()}
    reservation = movements.reserve(levels, wanted, order_id=order_id, user_id=user_id)
    if reservation is None:
        return _already_seen(order_id)
    data = {"order_id": order_id, "lines": reservation.lines}
    publish_event(
        "stock.reserved", data, correlation_id=causation.correlation_id, causation=causation
    )
    logger.info("order %s reserved: %s", order_id, _describe(wanted))
    _announce_low_stock(
        levels, before, correlation_id=causation.correlation_id, causation=causation
    )
    return reservation


def _already_seen(order_id: str) -> Reservation:
    existing = Reservation.objects.get(order_id=order_id)
    logger.info("order %s already has a %s reservation", order_id, existing.status)
    return existing


@transaction.atomic(savepoint=False)
def stock_release(*, order_id: str, user_id: int, reason: str, causation: Envelope) -> Reservation:
    """Give back what an order reserved; remember a cancel that came before its order."""
    reservation = Reservation.objects.select_for_update().filter(order_id=order_id).first()
    if reservation is None:
        # order.cancelled overtook order.created: this tombstone makes the late one a no-op.
        logger.info("order %s cancelled before it was seen here; nothing to release", order_id)
        return Reservation.objects.create(
            order_id=order_id, user_id=user_id, status=Reservation.Status.CANCELLED, reason=reason
        )
    if reservation.status != Reservation.Status.RESERVED:
        logger.info("order %s cancelled; its reservation is %s", order_id, reservation.status)
        return reservation
    quantities = reservation.quantities()
    movements.apply(
        movements.lock_levels(quantities),
        {pid: (0, -quantity) for pid, quantity in quantities.items()},
        kind=StockLedgerEntry.Kind.RELEASE,
        reason="released: order cancelled",
        order_id=order_id,
    )
    _set_status(reservation, Reservation.Status.RELEASED, reason=reason)
    data = {"order_id": order_id, "reason": reason}
    publish_event(
        "stock.released", data, correlation_id=causation.correlation_id, causation=causation
    )
    logger.info("order %s released: %s (%s)", order_id, _describe(quantities), reason)
    return reservation


@transaction.atomic(savepoint=False)
def stock_ship(*, order_id: str, causation: Envelope) -> Reservation:
    """Turn an order's reservation into a shipment: the goods leave, on_hand goes down."""
    reservation = Reservation.objects.select_for_update().filter(order_id=order_id).first()
    if reservation is None:
        raise ReservationMissing(f"order {order_id} was shipped but never reserved here")
    if reservation.status != Reservation.Status.RESERVED:
        log = logger.info if reservation.status == Reservation.Status.SHIPPED else logger.warning
        log("order %s shipped; its reservation is %s, nothing to do", order_id, reservation.status)
        return reservation
    quantities = reservation.quantities()
    movements.apply(
        movements.lock_levels(quantities),
        {pid: (-quantity, -quantity) for pid, quantity in quantities.items()},
        kind=StockLedgerEntry.Kind.SHIP,
        reason="shipped",
        order_id=order_id,
    )
    _set_status(reservation, Reservation.Status.SHIPPED)
    logger.info("order %s shipped: %s left the stock", order_id, _describe(quantities))
    return reservation


@transaction.atomic
def stock_adjust(
    *, product_id: int, delta: int, reason: str, actor_id: int | None, correlation_id: str
) -> StockLedgerEntry:
    """A counted correction of on_hand (delivery, breakage, stocktake), written to the ledger."""
    if delta == 0:
        message = "delta must not be 0: an adjustment changes the stock."
        raise refused(message, code=ErrorCode.ADJUSTMENT_EMPTY, field="delta")
    if not reason.strip():
        message = "reason is required."
        raise refused(message, code=ErrorCode.ADJUSTMENT_REASON_MISSING, field="reason")
    levels = movements.lock_levels([product_id])
    level = levels[product_id]
    if level.on_hand + delta < 0:
        problem = f"only {level.on_hand} on hand, it cannot go below 0."
        message = f"cannot remove {-delta}: {problem}"
        raise refused(message, code=ErrorCode.STOCK_BELOW_ZERO, field="delta")
    if level.on_hand + delta < level.reserved:
        problem = (
            f"{level.reserved} of the {level.on_hand} on hand are reserved for orders, "
            f"so at most {level.available} can be removed."
        )
        message = f"cannot remove {-delta}: {problem}"
        raise refused(message, code=ErrorCode.STOCK_BELOW_RESERVED, field="delta")
    before = {product_id: level.available}
    [entry] = movements.apply(
        levels,
        {product_id: (delta, 0)},
        kind=StockLedgerEntry.Kind.ADJUSTMENT,
        reason=reason.strip(),
        actor_id=actor_id,
    )
    _announce_low_stock(levels, before, correlation_id=correlation_id)
    logger.info("product %s on hand adjusted by %+d: %s", product_id, delta, reason.strip())
    return entry


def _announce_low_stock(
    levels: Mapping[int, movements.Level],
    before: Mapping[int, int],
    *,
    correlation_id: str,
    causation: Envelope | None = None,
) -> None:
    """``stock.low`` for each product whose availability has just dropped under its threshold."""
    for pid, level in levels.items():
        threshold = level.low_stock_threshold
        if crossed_low_threshold(before=before[pid], after=level.available, threshold=threshold):
            data = {
                "product_id": pid,
                "sku": level.sku,
                "name": level.name,
                "available": level.available,
                "threshold": threshold,
            }
            publish_event("stock.low", data, correlation_id=correlation_id, causation=causation)


def _set_status(reservation: Reservation, status: str, *, reason: str | None = None) -> None:
    reservation.status = status
    fields = ["status", "updated_at"]
    if reason is not None:
        reservation.reason = reason
        fields.append("reason")
    reservation.save(update_fields=fields)


def _describe(quantities: Mapping[int, int]) -> str:
    return ", ".join(f"{quantity} of product {pid}" for pid, quantity in quantities.items())
