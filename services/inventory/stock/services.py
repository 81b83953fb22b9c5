"""Every change to stock: counters, ledger, reservations and the events they announce, together.

The handlers' services use ``atomic(savepoint=False)``: they run inside the consumer's
transaction, which is already the unit of work, and a savepoint would cost two round trips per
message while rolling back nothing that the outer transaction does not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from errors import ErrorCode
from messaging.consumer import handling
from messaging.envelope import Envelope
from messaging.outbox import publish_event
from service_runtime.errors import refused
from stock import backorders, movements
from stock.availability import (
    Allocation,
    ShipmentRefused,
    allocate_in_turn,
    crossed_low_threshold,
    merge_lines,
    rejection_reason,
    shipment_units,
)
from stock.models import (
    DEFAULT_WAREHOUSE_CODE,
    Backorder,
    Reservation,
    ReturnReceipt,
    StockLedgerEntry,
    StockLevel,
    Warehouse,
)
from stock.warehouses import warehouse_default, warehouse_named

logger = logging.getLogger(__name__)


class ReservationMissing(Exception):
    """An order inventory has never reserved anything for."""


def stock_level_create(*, product_id: int) -> StockLevel:
    """The counters of a new product, at zero, in the default warehouse. Its rows in other
    warehouses are created by its first adjustment or transfer there."""
    return StockLevel.objects.create(product_id=product_id, warehouse=warehouse_default())


@dataclass(frozen=True)
class OrderToReserve:
    """An order inventory is asked to reserve: what ``order.created`` says."""

    order_id: str
    user_id: int
    lines: Iterable[Mapping[str, int]]
    causation: Envelope


class OrderSeenBefore(Exception):
    """An order of a batch already has a reservation (a cancel came before it): the batch's
    decisions counted it, so they are taken again one order at a time."""


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
    order = OrderToReserve(order_id=order_id, user_id=user_id, lines=lines, causation=causation)
    [reservation] = stock_reserve_many(orders=[order])
    return reservation


@transaction.atomic(savepoint=False)
def stock_reserve_many(*, orders: Sequence[OrderToReserve]) -> list[Reservation]:
    """Reserve each order, all of its lines or none, in turn; announce each outcome. Returns
    each order's reservation.

    Whatever the number of orders, the same statements as for one: lock every warehouse's
    level of every product they name (in (product id, warehouse id) order, so that batches
    never deadlock), decide every order in Python against the locked counters, each with what
    the orders ahead of it left and from which warehouses
    (:func:`stock.availability.allocate_in_turn`), then write every reservation, counter and
    ledger entry in one statement; then the events, one outbox row each. An order id given
    twice is decided by its first copy; the others change nothing, like a duplicate.

    An order of several that already has a reservation raises :class:`OrderSeenBefore`, as
    the decisions of the orders after it counted it.
    """
    first: dict[str, OrderToReserve] = {}
    for order in orders:
        first.setdefault(order.order_id, order)
    unique = list(first.values())
    wanted = [merge_lines(order.lines) for order in unique]
    levels = movements.lock_levels({pid for quantities in wanted for pid in quantities})
    allocations = allocate_in_turn(wanted, movements.offers(levels))
    decisions = [
        movements.Decision(
            order_id=order.order_id,
            user_id=order.user_id,
            wanted=quantities,
            taken=allocation.taken,
            rejection=None
            if allocation.reserved or allocation.backordered
            else rejection_reason(allocation.shortfalls, len(quantities)),
            waiting=allocation.waiting,
        )
        for order, quantities, allocation in zip(unique, wanted, allocations, strict=True)
    ]
    written = movements.reserve(levels, decisions)
    if len(written) < len(decisions):
        if len(decisions) > 1:
            missing = [d.order_id for d in decisions if d.order_id not in written]
            raise OrderSeenBefore(f"orders {missing} already have a reservation")
        return [_already_seen(unique[0].order_id)] * len(orders)
    backorders.record_waiting(decisions, written)
    products = movements.products(levels)  # once for the batch, not once per order
    for order, decision, allocation in zip(unique, decisions, allocations, strict=True):
        with handling(order.causation):
            _announce(
                written[order.order_id], decision, allocation, levels, products, order.causation
            )
    return [written[order.order_id] for order in orders]


def _announce(
    reservation: Reservation,
    decision: movements.Decision,
    allocation: Allocation,
    levels: movements.Levels,
    products: Mapping[int, movements.Level],
    causation: Envelope,
) -> None:
    """The events of one order's reservation: reserved (and stock now low), backordered, or
    rejected."""
    order_id, correlation_id = decision.order_id, causation.correlation_id
    before = allocation.available_before
    if allocation.backordered:
        _announce_backordered(reservation, decision, levels, causation)
        after = {pid: before[pid] - units for pid, units in _per_product(decision.taken).items()}
        _announce_low_stock(
            products, before, after, correlation_id=correlation_id, causation=causation
        )
        return
    if not allocation.reserved:
        data: dict[str, Any] = {
            "order_id": order_id,
            "reason": decision.rejection,
            "lines": [shortfall.as_event_line() for shortfall in allocation.shortfalls],
        }
        publish_event("stock.rejected", data, correlation_id=correlation_id, causation=causation)
        logger.info("order %s rejected: %s", order_id, decision.rejection)
        return
    # The newest payload (allocations by warehouse code, from the locked rows: no other
    # read); written as version 1, without them, unless the consumers are said to read 2.
    data = {
        "order_id": order_id,
        "lines": reservation.lines,
        "allocations": [
            {"product_id": pid, "warehouse": levels[pid, wid].warehouse_code, "quantity": units}
            for (pid, wid), units in decision.taken.items()
        ],
    }
    publish_event("stock.reserved", data, correlation_id=correlation_id, causation=causation)
    logger.info("order %s reserved: %s", order_id, _describe(decision.taken))
    after = {pid: before[pid] - quantity for pid, quantity in decision.wanted.items()}
    _announce_low_stock(products, before, after, correlation_id=correlation_id, causation=causation)


def _announce_backordered(
    reservation: Reservation,
    decision: movements.Decision,
    levels: movements.Levels,
    causation: Envelope,
) -> None:
    """``stock.backordered``: what the order holds now and what it waits for."""
    data = {
        "order_id": decision.order_id,
        "lines": reservation.lines,
        "allocations": backorders.event_allocations(
            backorders.warehouse_codes(levels), reservation.allocations
        ),
        "waiting": movements.as_lines(decision.waiting),
    }
    correlation_id = causation.correlation_id
    publish_event("stock.backordered", data, correlation_id=correlation_id, causation=causation)
    logger.info("order %s backordered: waits for %s", decision.order_id, dict(decision.waiting))


def _per_product(taken: Mapping[movements.Key, int]) -> dict[int, int]:
    units: dict[int, int] = {}
    for (pid, _), quantity in taken.items():
        units[pid] = units.get(pid, 0) + quantity
    return units


def _already_seen(order_id: str) -> Reservation:
    existing = Reservation.objects.get(order_id=order_id)
    logger.info("order %s already has a %s reservation", order_id, existing.status)
    return existing


@transaction.atomic(savepoint=False)
def stock_release(*, order_id: str, user_id: int, reason: str, causation: Envelope) -> Reservation:
    """Give back what an order reserved, or what a backordered one holds so far (it stops
    waiting), and serve the orders waiting on the units given back; remember a cancel that came
    before its order."""
    seen = Reservation.objects.filter(order_id=order_id).first()
    if seen is None:
        # order.cancelled overtook order.created: this tombstone makes the late one a no-op.
        logger.info("order %s cancelled before it was seen here; nothing to release", order_id)
        return Reservation.objects.create(
            order_id=order_id, user_id=user_id, status=Reservation.Status.CANCELLED, reason=reason
        )
    levels = None
    if seen.status == Reservation.Status.BACKORDERED:
        # The levels of its products before its row: the order every writer of a backordered
        # reservation takes them in (stock.backorders).
        levels = backorders.lock_for_increase(seen.quantities())
    reservation = Reservation.objects.select_for_update().get(pk=seen.pk)
    backordered = reservation.status == Reservation.Status.BACKORDERED
    if not reservation.active and not backordered:
        logger.info("order %s cancelled; its reservation is %s", order_id, reservation.status)
        return reservation
    held = reservation.held()  # what has not shipped: what shipped stays gone
    if held:
        levels = levels or backorders.lock_for_increase(pid for pid, _ in held)
        movements.apply(
            levels,
            {key: (0, -quantity) for key, quantity in held.items()},
            kind=StockLedgerEntry.Kind.RELEASE,
            reason="released: order cancelled",
            order_id=order_id,
        )
    if backordered:
        Backorder.objects.filter(reservation_id=reservation.pk).delete()
    status = Reservation.Status.RELEASED if held or backordered else Reservation.Status.SHIPPED
    _set_status(reservation, status, reason=reason)
    data = {"order_id": order_id, "reason": reason}
    publish_event(
        "stock.released", data, correlation_id=causation.correlation_id, causation=causation
    )
    logger.info("order %s released: %s (%s)", order_id, _describe(held), reason)
    if levels is not None and held:
        _serve_waiting(levels, {pid for pid, _ in held}, causation.correlation_id, causation)
    return reservation


@dataclass(frozen=True)
class Shipment:
    """What ``order.shipped`` (version 2) says leaves: ``lines`` (units per product; empty:
    everything not shipped yet) from ``warehouse`` (a code; None: wherever they are held)."""

    shipment_id: int | None = None  # None: not known (version 1), a whole order
    warehouse: str | None = None
    lines: Mapping[int, int] = field(default_factory=dict)


@transaction.atomic(savepoint=False)
def stock_ship(
    *, order_id: str, causation: Envelope, shipment: Shipment | None = None
) -> Reservation:
    """Turn units of an order's reservation into a shipment: they leave, reserved and on_hand
    go down in the rows they were held in, one ``ship`` ledger entry per row. The reservation
    counts them shipped per allocation and remembers the shipment, and is SHIPPED once nothing
    is left (else PARTIALLY_SHIPPED).

    Raises :class:`ReservationMissing` for an order never reserved here, and
    :class:`stock.availability.ShipmentRefused`, with nothing written, for units it does not
    hold there. A shipment seen before, or a reservation that holds nothing any more (released,
    shipped), changes nothing."""
    shipment = shipment or Shipment()
    reservation = Reservation.objects.select_for_update().filter(order_id=order_id).first()
    if reservation is None:
        raise ReservationMissing(f"order {order_id} was shipped but never reserved here")
    if shipment.shipment_id is not None and shipment.shipment_id in reservation.shipment_ids:
        logger.info("order %s: shipment %s already shipped", order_id, shipment.shipment_id)
        return reservation
    if not reservation.active:
        log = logger.info if reservation.status == Reservation.Status.SHIPPED else logger.warning
        log("order %s shipped; its reservation is %s, nothing to do", order_id, reservation.status)
        return reservation
    held = reservation.held()
    levels = movements.lock_levels(pid for pid, _ in held)
    warehouse_id = None
    if shipment.warehouse is not None:
        codes = {level.warehouse_code: level.warehouse_id for level in levels.values()}
        warehouse_id = codes.get(shipment.warehouse)
        if warehouse_id is None:
            raise ShipmentRefused(
                f"order {order_id}: nothing of it is held in warehouse {shipment.warehouse!r}"
            )
    try:
        taking = shipment_units(held, shipment.lines, warehouse_id)
    except ShipmentRefused as exc:
        where = f" from warehouse {shipment.warehouse!r}" if shipment.warehouse else ""
        raise ShipmentRefused(f"order {order_id}, shipment{where}: {exc}") from exc
    movements.apply(
        levels,
        {key: (-quantity, -quantity) for key, quantity in taking.items()},
        kind=StockLedgerEntry.Kind.SHIP,
        reason="shipped",
        order_id=order_id,
    )
    _count_shipped(reservation, taking, shipment.shipment_id)
    logger.info("order %s shipped: %s left the stock", order_id, _describe(taking))
    return reservation


def _count_shipped(
    reservation: Reservation, taking: Mapping[movements.Key, int], shipment_id: int | None
) -> None:
    """Add the shipped units to the reservation's allocations, remember the shipment, and
    move its status; one statement."""
    for a in reservation.allocations:
        units = taking.get((int(a["product_id"]), int(a["warehouse_id"])), 0)
        if units:
            a["shipped"] = int(a.get("shipped", 0)) + units
    if shipment_id is not None:
        reservation.shipment_ids = [*reservation.shipment_ids, shipment_id]
    reservation.status = (
        Reservation.Status.PARTIALLY_SHIPPED if reservation.held() else Reservation.Status.SHIPPED
    )
    reservation.save(update_fields=["allocations", "shipment_ids", "status", "updated_at"])


@transaction.atomic
def stock_adjust(
    *,
    product_id: int,
    delta: int,
    reason: str,
    actor_id: int | None,
    correlation_id: str,
    warehouse: str | None = None,
) -> StockLedgerEntry:
    """A counted correction of on_hand (delivery, breakage, stocktake) in one warehouse (by its
    code; None: the default one), written to the ledger."""
    if delta == 0:
        message = "delta must not be 0: an adjustment changes the stock."
        raise refused(message, code=ErrorCode.ADJUSTMENT_EMPTY, field="delta")
    if not reason.strip():
        message = "reason is required."
        raise refused(message, code=ErrorCode.ADJUSTMENT_REASON_MISSING, field="reason")
    key = (product_id, warehouse_named(warehouse, field="warehouse").pk)
    levels = _lock_product(product_id, creating=key, serving=delta > 0)
    level = levels[key]
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
    [entry] = _move_by_staff(
        levels,
        {key: (delta, 0)},
        kind=StockLedgerEntry.Kind.ADJUSTMENT,
        reason=reason.strip(),
        actor_id=actor_id,
        correlation_id=correlation_id,
    )
    logger.info(
        "product %s on hand adjusted by %+d in warehouse %s: %s",
        product_id,
        delta,
        key[1],
        reason.strip(),
    )
    if delta > 0:
        _serve_waiting(levels, {product_id}, correlation_id)
    return entry


@transaction.atomic
def stock_transfer(
    *,
    product_id: int,
    source: str,
    destination: str,
    quantity: int,
    reason: str,
    actor_id: int | None,
    correlation_id: str,
) -> tuple[StockLedgerEntry, StockLedgerEntry]:
    """Move units of a product from one warehouse to another (by their codes), at once: never
    more than is available at the source (on hand and not reserved). Two ledger entries, out
    of the source and into the destination. The destination may be inactive: it still stores.
    """
    if source == destination:
        message = "from_warehouse and to_warehouse must differ: a transfer moves stock."
        raise refused(message, code=ErrorCode.TRANSFER_SAME_WAREHOUSE, field="to_warehouse")
    if not reason.strip():
        message = "reason is required."
        raise refused(message, code=ErrorCode.ADJUSTMENT_REASON_MISSING, field="reason")
    if not StockLevel.objects.filter(product_id=product_id).exists():
        message = f"no product has the id {product_id}."
        raise refused(message, code=ErrorCode.PRODUCT_UNKNOWN, field="product")
    out = (product_id, warehouse_named(source, field="from_warehouse").pk)
    arriving = warehouse_named(destination, field="to_warehouse")
    into = (product_id, arriving.pk)
    # Units arriving in an active warehouse can be sold: the waiting orders come first.
    levels = _lock_product(product_id, creating=into, serving=arriving.active)
    level = levels.get(out)
    available = level.available if level else 0
    if quantity > available:
        held = f" ({level.on_hand} on hand, {level.reserved} reserved)" if level else ""
        message = (
            f"cannot transfer {quantity}: only {available} available in warehouse {source!r}{held}."
        )
        raise refused(message, code=ErrorCode.TRANSFER_EXCEEDS_AVAILABLE, field="quantity")
    entry_out, entry_in = _move_by_staff(
        levels,
        {out: (-quantity, 0), into: (quantity, 0)},
        kind=StockLedgerEntry.Kind.TRANSFER,
        reason=reason.strip(),
        actor_id=actor_id,
        correlation_id=correlation_id,
    )
    logger.info(
        "product %s: %d moved from warehouse %s to %s: %s",
        product_id,
        quantity,
        source,
        destination,
        reason.strip(),
    )
    if arriving.active:
        _serve_waiting(levels, {product_id}, correlation_id)
    return entry_out, entry_in


class ReturnUnknownProduct(Exception):
    """A received return names a product inventory does not know."""


# Remembers a return once: the row comes back only to the first to write it.
_RECEIPT_SQL = (
    f"INSERT INTO {ReturnReceipt._meta.db_table} (return_id, order_id, created_at)"  # noqa: S608
    " VALUES (%s, %s, %s) ON CONFLICT (return_id) DO NOTHING RETURNING id"
)


@transaction.atomic(savepoint=False)
def stock_receive_return(
    *,
    return_id: int,
    order_id: str,
    warehouse: str,
    lines: Iterable[Mapping[str, int]],
    causation: Envelope,
) -> bool:
    """Put the restocked units of a received return back on hand in ``warehouse`` (ledger
    ``return``) and write off the damaged ones (ledger ``write_off``, no stock change); then
    serve the orders waiting on the restocked products. Returns False, moving nothing, for a
    return already received here (the same return under another message id).

    An unknown warehouse code restocks into the default warehouse, and says so: the goods are
    there, so the return is never refused for it. A product inventory does not know raises
    :class:`ReturnUnknownProduct` before anything is written.
    """
    restocked: dict[int, int] = {}
    damaged: dict[int, int] = {}
    for line in lines:
        pid = int(line["product_id"])
        restocked[pid] = restocked.get(pid, 0) + int(line["restocked"])
        damaged[pid] = damaged.get(pid, 0) + int(line["damaged"])
    products = sorted(restocked)
    known = set(
        StockLevel.objects.filter(product_id__in=products).values_list("product_id", flat=True)
    )
    if set(products) - known:
        unknown = sorted(set(products) - known)
        raise ReturnUnknownProduct(f"return {return_id}: no product has the ids {unknown}")
    with connection.cursor() as cursor:
        cursor.execute(_RECEIPT_SQL, [return_id, order_id, timezone.now()])
        if cursor.fetchone() is None:
            logger.info("return %s of order %s already received here", return_id, order_id)
            return False
    into, note = _return_warehouse(warehouse, return_id)
    movements.ensure_levels((pid, into.pk) for pid in products)
    levels = backorders.lock_for_increase(products)
    back = {(pid, into.pk): (units, 0) for pid, units in restocked.items() if units > 0}
    if back:
        reason = f"return {return_id} of order {order_id}: restocked{note}"
        movements.apply(
            levels, back, kind=StockLedgerEntry.Kind.RETURN, reason=reason, order_id=order_id
        )
    for pid, units in damaged.items():
        if units > 0:
            reason = (
                f"return {return_id} of order {order_id}: {units} damaged units written off{note}"
            )
            movements.apply(
                levels,
                {(pid, into.pk): (0, 0)},
                kind=StockLedgerEntry.Kind.WRITE_OFF,
                reason=reason,
                order_id=order_id,
            )
    logger.info(
        "return %s of order %s received in warehouse %s: %s restocked, %s damaged",
        return_id,
        order_id,
        into.code,
        restocked,
        damaged,
    )
    if back and into.active:
        _serve_waiting(levels, {pid for pid, _ in back}, causation.correlation_id, causation)
    return True


def _return_warehouse(code: str, return_id: int) -> tuple[Warehouse, str]:
    """The warehouse a return is received into, and what the ledger says of it: the one of
    this code, else the default one."""
    found = Warehouse.objects.filter(code=code).first()
    if found is not None:
        return found, ""
    logger.warning(
        "return %s received into unknown warehouse %r: restocked into %r instead",
        return_id,
        code,
        DEFAULT_WAREHOUSE_CODE,
    )
    return warehouse_default(), f" (warehouse {code!r} unknown: into {DEFAULT_WAREHOUSE_CODE!r})"


def _serve_waiting(
    levels: movements.Levels,
    product_ids: set[int],
    correlation_id: str,
    causation: Envelope | None = None,
) -> None:
    """Serve the waiting lists of products whose stock just grew (:func:`stock.backorders.serve`);
    ``stock.low`` for each product the orders served left low."""
    before = {pid: offer.available for pid, offer in movements.offers(levels).items()}
    completed = backorders.serve(levels, product_ids, causation=causation)
    after = {pid: offer.available for pid, offer in movements.offers(levels).items()}
    _announce_low_stock(
        movements.products(levels),
        before,
        after,
        correlation_id=correlation_id,
        causation=causation,
    )
    if completed:
        logger.info("backordered orders completed: %s", ", ".join(completed))


def _lock_product(
    product_id: int, *, creating: movements.Key, serving: bool = False
) -> movements.Levels:
    """Every warehouse's row of one product, locked; the row ``creating`` made first if new.
    ``serving``: its stock grows, so the products of the orders waiting on it too."""
    movements.ensure_levels([creating])
    if serving:
        return backorders.lock_for_increase([product_id])
    return movements.lock_levels([product_id])


def _move_by_staff(
    levels: movements.Levels,
    deltas: movements.Deltas,
    *,
    kind: str,
    reason: str,
    actor_id: int | None,
    correlation_id: str,
) -> list[StockLedgerEntry]:
    """Apply a staff move to locked levels; ``stock.low`` if it left a product low."""
    products = {pid for pid, _ in deltas}
    before = {pid: _sellable(levels, pid) for pid in products}
    entries = movements.apply(levels, deltas, kind=kind, reason=reason, actor_id=actor_id)
    after = {pid: _sellable(levels, pid) for pid in products}
    _announce_low_stock(movements.products(levels), before, after, correlation_id=correlation_id)
    return entries


def _sellable(levels: movements.Levels, product_id: int) -> int:
    """What the product's active warehouses can supply: what stock.low speaks of."""
    return movements.offers(levels)[product_id].available


def _announce_low_stock(
    products: Mapping[int, movements.Level],
    before: Mapping[int, int],
    after: Mapping[int, int],
    *,
    correlation_id: str,
    causation: Envelope | None = None,
) -> None:
    """``stock.low`` for each product whose availability (in its active warehouses) has just
    dropped under its threshold. ``products``: one locked row of each product
    (``movements.products``)."""
    for pid, available in after.items():
        level = products[pid]
        threshold = level.low_stock_threshold
        if crossed_low_threshold(before=before[pid], after=available, threshold=threshold):
            data = {
                "product_id": pid,
                "sku": level.sku,
                "name": level.name,
                "available": available,
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


def _describe(held: Mapping[movements.Key, int]) -> str:
    return ", ".join(
        f"{quantity} of product {pid} in warehouse {wid}" for (pid, wid), quantity in held.items()
    )
