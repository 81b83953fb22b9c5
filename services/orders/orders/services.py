"""Writes to orders. Every state change and the event announcing it share one transaction.

Placing an order lives in :mod:`orders.placement` (re-exported here); this module moves orders
from one status to the next.

Transitions are guarded by :data:`orders.models.TRANSITIONS` under a row lock (taken by
``SELECT ... FOR UPDATE``, or by a conditional ``UPDATE ... WHERE status = ...`` that is the lock
and the check in one statement), so a late or redelivered event never moves an order backwards
and concurrent writers serialise.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from messaging.consumer import handling
from messaging.envelope import Envelope
from messaging.outbox import publish_event
from orders import metrics
from orders.models import (
    TRANSITIONS,
    Order,
    OrderAllocation,
    OrderLine,
    OrderStatus,
    OrderStatusChange,
)
from orders.placement import (  # noqa: F401 - the placing API, re-exported
    IdempotencyKeyReused,
    InvalidOrder,
    LineRequest,
    Placement,
    order_log_context,
    order_place,
    request_fingerprint,
)
from service_runtime import statements

logger = logging.getLogger(__name__)

DEADLINE_REASON = "deadline exceeded"
BACKORDER_DEADLINE_REASON = "backorder deadline passed"


class TransitionNotAllowed(Exception):
    """The order's status does not allow the requested change."""


def _lock(order_id: uuid.UUID) -> Order:
    """The order, row-locked until the transaction ends; ``Order.DoesNotExist`` if unknown."""
    return Order.objects.select_for_update().get(pk=order_id)


def _record(
    order: Order,
    *,
    from_status: str,
    reason: str,
    causation: Envelope | None = None,
    actor_user_id: int | None = None,
) -> None:
    OrderStatusChange.objects.create(
        order=order,
        from_status=from_status,
        to_status=order.status,
        reason=reason,
        caused_by_message_id=causation.id if causation else None,
        actor_user_id=actor_user_id,
    )


def _move(
    order: Order,
    to_status: str,
    *,
    reason: str,
    causation: Envelope | None = None,
    actor_user_id: int | None = None,
    also_update: tuple[str, ...] = (),
) -> None:
    from_status = order.status
    if to_status not in TRANSITIONS[from_status]:
        raise TransitionNotAllowed(f"A {from_status} order cannot become {to_status}.")
    order.status = to_status
    order.save(update_fields=["status", "updated_at", *also_update])
    metrics.order_moved(from_status=from_status, to_status=to_status, placed_at=order.created_at)
    _record(
        order,
        from_status=from_status,
        reason=reason,
        causation=causation,
        actor_user_id=actor_user_id,
    )


class Held(NamedTuple):
    """Units of a product that inventory holds for an order in one warehouse (its code)."""

    product_id: int
    warehouse: str
    quantity: int


def held_units(allocations: Sequence[dict[str, Any]]) -> tuple[Held, ...]:
    """``stock.reserved``'s allocations, one per product and warehouse (a pair named twice
    counts once, its quantities added), in the order they were given."""
    units: dict[tuple[int, str], int] = {}
    for a in allocations:
        key = (a["product_id"], a["warehouse"])
        units[key] = units.get(key, 0) + a["quantity"]
    return tuple(Held(product_id, warehouse, n) for (product_id, warehouse), n in units.items())


@dataclass(frozen=True)
class StockAnswer:
    """What inventory answered for one order: ``stock.reserved``, or ``stock.rejected``."""

    order_id: uuid.UUID
    causation: Envelope
    rejection: str | None = None  # why stock was refused; None: reserved
    rejected_lines: list[dict[str, Any]] | None = None
    # Where the reserved units are held; () when inventory did not say (not known).
    allocations: tuple[Held, ...] = ()

    @property
    def to_status(self) -> str:
        return OrderStatus.CONFIRMED if self.rejection is None else OrderStatus.REJECTED

    @property
    def reason(self) -> str:
        """The reason its history entry gives."""
        return "stock reserved" if self.rejection is None else self.rejection


@dataclass(frozen=True)
class _Moved:
    """What the event and the metrics need of an order that :func:`_move_pending` moved."""

    user_id: int
    total: Decimal
    created_at: datetime


def _move_pending(answers: Sequence[StockAnswer]) -> dict[uuid.UUID, _Moved]:
    """PENDING → CONFIRMED or REJECTED (with the reasons) for each answered order that is
    PENDING, with its history entry; the orders moved. The others, not PENDING or unknown, are
    left as they are. One answer per order.

    On PostgreSQL this is one statement whatever the number of orders
    (:func:`_move_pending_sql`): ``UPDATE ... FROM`` the answers ``WHERE status = 'PENDING'
    RETURNING`` is the row locks and the check at once (a concurrent writer's change is waited
    for and re-checked), and the history rows are inserted from what it returned. It only
    writes, so it can run many times in one transaction. Other databases take the ORM way,
    order by order: lock, check, save, insert.
    """
    if connection.vendor != "postgresql":
        return {a.order_id: m for a in answers if (m := _move_pending_portable(a)) is not None}
    now = timezone.now()
    # The rows as two JSON parameters: psycopg dumps a list parameter element by element in
    # Python, which cost more than the statement's own work (reports/bench-changes.md).
    params: dict[str, Any] = {
        "answers": json.dumps(
            [
                [
                    str(a.order_id),
                    a.to_status,
                    a.reason,
                    a.rejection,
                    None if a.rejection is None else a.rejected_lines,
                    a.causation.id,
                ]
                for a in answers
            ]
        ),
        # The allocations of every answer, each with its answer's position (from 1).
        "held": json.dumps(
            [
                [position, h.product_id, h.warehouse, h.quantity]
                for position, a in enumerate(answers, 1)
                for h in a.allocations
            ]
        ),
        "pending": OrderStatus.PENDING.value,
        "rejected": OrderStatus.REJECTED.value,
        "now": now,
    }
    rows = statements.execute(_move_pending_sql(), params, prepared=True)
    moved = {row[0]: _Moved(user_id=row[1], total=row[2], created_at=row[3]) for row in rows}
    for answer in answers:
        if answer.order_id in moved:
            metrics.order_moved(
                from_status=OrderStatus.PENDING,
                to_status=answer.to_status,
                placed_at=moved[answer.order_id].created_at,
            )
    return moved


def _move_pending_portable(answer: StockAnswer) -> _Moved | None:
    try:
        order = _lock(answer.order_id)
    except Order.DoesNotExist:
        return None
    if order.status != OrderStatus.PENDING:
        return None
    also_update: tuple[str, ...] = ()
    if answer.rejection is not None:
        order.rejection_reason, order.rejected_lines = answer.rejection, answer.rejected_lines
        also_update = ("rejection_reason", "rejected_lines")
        order.lines.update(cancelled_quantity=F("quantity"))
    OrderAllocation.objects.bulk_create(
        [OrderAllocation(order=order, **held._asdict()) for held in answer.allocations]
    )
    _move(
        order,
        answer.to_status,
        reason=answer.reason,
        causation=answer.causation,
        also_update=also_update,
    )
    return _Moved(user_id=order.user_id, total=order.total, created_at=order.created_at)


@functools.cache
def _move_pending_sql() -> str:
    """The statement of :func:`_move_pending` on PostgreSQL; its text is the same every time,
    so it is prepared and runs on its generic plan (``service_runtime.statements``).

    ``moved`` is the conditional update, ``noted`` the history rows that :func:`_record`
    would write for it (``actor_user_id`` stays NULL: an event is no caller), in the answers'
    order. A rejection sets the reasons; a confirmation keeps them (NULL falls back).
    ``allocated`` stores where a confirmed order's units are held, ``cancelled`` counts every
    unit of a rejected order as cancelled.

    ``moved`` finds its orders by primary key, from the array of the answered ids, and checks
    their status as a filter only (``IS TRUE`` keeps the status index out of the plan): with the
    status as an index condition, a plan made while PENDING orders were few took every PENDING
    order through that index and kept the answered ones, so a backlog (inventory down for a
    while) made every answer read all of it.
    """
    qn = connection.ops.quote_name
    order, change = Order._meta, OrderStatusChange._meta
    allocation, line = OrderAllocation._meta, OrderLine._meta
    return f"""
        WITH answer AS (
            SELECT (x ->> 0)::uuid AS order_id, x ->> 1 AS to_status, x ->> 2 AS reason,
                x ->> 3 AS rejection, NULLIF(x -> 4, 'null'::jsonb) AS rejected_lines,
                (x ->> 5)::uuid AS causation_id, position
            FROM jsonb_array_elements(%(answers)s::jsonb) WITH ORDINALITY AS a (x, position)
        ), moved AS (
            UPDATE {qn(order.db_table)} AS o
            SET {qn("status")} = a.to_status, {qn("updated_at")} = %(now)s,
                {qn("rejection_reason")} = COALESCE(a.rejection, o.{qn("rejection_reason")}),
                {qn("rejected_lines")} = COALESCE(a.rejected_lines, o.{qn("rejected_lines")})
            FROM answer AS a
            WHERE o.{qn("id")} = ANY (ARRAY(SELECT order_id FROM answer))
                AND o.{qn("id")} = a.order_id AND (o.{qn("status")} = %(pending)s) IS TRUE
            RETURNING o.{qn("id")}, o.{qn("user_id")}, o.{qn("total")}, o.{qn("created_at")},
                a.to_status, a.reason, a.causation_id, a.position
        ), noted AS (
            INSERT INTO {qn(change.db_table)} (
                {qn("order_id")}, {qn("from_status")}, {qn("to_status")}, {qn("reason")},
                {qn("at")}, {qn("caused_by_message_id")}
            )
            SELECT {qn("id")}, %(pending)s, to_status, reason, %(now)s, causation_id
            FROM moved ORDER BY position
        ), allocated AS (
            INSERT INTO {qn(allocation.db_table)} (
                {qn("order_id")}, {qn("product_id")}, {qn("warehouse")}, {qn("quantity")},
                {qn("shipped_quantity")}
            )
            SELECT m.{qn("id")}, (h.x ->> 1)::bigint, h.x ->> 2, (h.x ->> 3)::integer, 0
            FROM jsonb_array_elements(%(held)s::jsonb) WITH ORDINALITY AS h (x, n)
            JOIN moved AS m ON m.position = (h.x ->> 0)::bigint
            ORDER BY h.n
        ), cancelled AS (
            UPDATE {qn(line.db_table)} AS l
            SET {qn("cancelled_quantity")} = l.{qn("quantity")}
            FROM moved AS m
            WHERE l.{qn("order_id")} = m.{qn("id")} AND m.to_status = %(rejected)s
        )
        SELECT {qn("id")}, {qn("user_id")}, {qn("total")}, {qn("created_at")} FROM moved
    """  # noqa: S608 (names come from the models)


def _publish_cancelled(order: Order, reason: str, causation: Envelope | None = None) -> None:
    publish_event(
        "order.cancelled",
        {"order_id": str(order.id), "user_id": order.user_id, "reason": reason},
        correlation_id=str(order.id),
        causation=causation,
    )


def _cancel(order: Order, *, reason: str, actor_user_id: int | None = None) -> None:
    """PENDING, BACKORDERED or CONFIRMED → CANCELLED; PARTIALLY_SHIPPED → SHIPPED, what has
    shipped kept.
    Every unit not shipped is cancelled, and ``order.cancelled`` tells inventory to release
    what it holds for the order."""
    partly_shipped = order.status == OrderStatus.PARTIALLY_SHIPPED
    if OrderStatus.CANCELLED not in TRANSITIONS[order.status] and not partly_shipped:
        raise TransitionNotAllowed(
            "Only PENDING, BACKORDERED, CONFIRMED or PARTIALLY_SHIPPED orders can be cancelled; "
            f"this one is {order.status}."
        )
    order.cancellation_reason = reason
    order.lines.update(cancelled_quantity=F("quantity") - F("shipped_quantity"))
    if partly_shipped:
        note = f"{reason}; the units not shipped yet were cancelled"
        to_status: str = OrderStatus.SHIPPED
    else:
        note, to_status = reason, OrderStatus.CANCELLED
    _move(
        order,
        to_status,
        reason=note,
        actor_user_id=actor_user_id,
        also_update=("cancellation_reason",),
    )
    _publish_cancelled(order, reason)
    with order_log_context(order.id):
        logger.info("order %s cancelled: %s", order.id, reason)


@transaction.atomic
def order_cancel(*, order_id: uuid.UUID, reason: str, actor_user_id: int | None = None) -> Order:
    """PENDING, BACKORDERED or CONFIRMED → CANCELLED, PARTIALLY_SHIPPED → SHIPPED (the rest
    cancelled),
    and ``order.cancelled`` so inventory releases what it holds."""
    with order_log_context(order_id):
        order = _lock(order_id)
        _cancel(order, reason=reason, actor_user_id=actor_user_id)
    return order


@transaction.atomic(savepoint=False)  # inside the consumer's transaction
def order_confirm_reservation(
    *, order_id: uuid.UUID, causation: Envelope, allocations: Sequence[Held] = ()
) -> None:
    """``stock.reserved``: PENDING or BACKORDERED → CONFIRMED, with where its units are held
    (``allocations``, () when not known; a BACKORDERED order's replace what it held so far);
    a reservation for a dead order is released.

    CANCELLED (cancel or deadline raced the reservation) or REJECTED: ``order.cancelled`` is
    published again so inventory releases the stock (its release is idempotent). CONFIRMED,
    PARTIALLY_SHIPPED or SHIPPED: a repeat, nothing to do. ``Order.DoesNotExist`` for an
    unknown order.

    The usual case, a PENDING order, is one statement before the event (see
    :func:`_move_pending`); the order is read only when it was not PENDING.
    """
    _settle_one(StockAnswer(order_id=order_id, causation=causation, allocations=tuple(allocations)))


@transaction.atomic(savepoint=False)  # inside the consumer's transaction
def order_reject_reservation(
    *, order_id: uuid.UUID, reason: str, lines: list[dict[str, Any]], causation: Envelope
) -> None:
    """``stock.rejected``: PENDING → REJECTED with the reasons; otherwise a late event, ignored.

    ``Order.DoesNotExist`` for an unknown order. Like :func:`order_confirm_reservation`, one
    statement before the event when the order is PENDING.
    """
    _settle_one(
        StockAnswer(order_id=order_id, causation=causation, rejection=reason, rejected_lines=lines)
    )


def _settle_one(answer: StockAnswer) -> None:
    if orders_settle_reservations(answers=[answer]):
        raise Order.DoesNotExist(f"no order {answer.order_id}")


@transaction.atomic(savepoint=False)  # inside the consumer's transaction
def orders_settle_reservations(*, answers: Sequence[StockAnswer]) -> set[uuid.UUID]:
    """Inventory's answers, in their order: each confirms or rejects its order as
    :func:`order_confirm_reservation` and :func:`order_reject_reservation` do. Returns the
    orders unknown here, for which nothing was done.

    Every PENDING order moves in one statement, whatever their number (the first answer of an
    order decides; a later one finds it moved, as if it came alone); then the events. Only an
    order that was not PENDING is read, on its own, to tell a late answer from a compensation.
    """
    first: dict[uuid.UUID, StockAnswer] = {}
    for answer in answers:
        first.setdefault(answer.order_id, answer)
    moved = _move_pending(list(first.values()))
    unknown: set[uuid.UUID] = set()
    for answer in answers:
        with handling(answer.causation):
            if first[answer.order_id] is answer and answer.order_id in moved:
                _announce_settled(answer, moved[answer.order_id])
            elif not _late_answer(answer):
                unknown.add(answer.order_id)
    return unknown


def _announce_settled(answer: StockAnswer, moved: _Moved) -> None:
    order_id = str(answer.order_id)
    if answer.rejection is None:
        data = {"order_id": order_id, "user_id": moved.user_id, "total": f"{moved.total:.2f}"}
        event_type = "order.confirmed"
        logger.info("order %s confirmed: stock reserved, total %s", order_id, moved.total)
    else:
        data = {"order_id": order_id, "user_id": moved.user_id, "reason": answer.rejection}
        event_type = "order.rejected"
        logger.info("order %s rejected: %s", order_id, answer.rejection)
    publish_event(event_type, data, correlation_id=order_id, causation=answer.causation)


def _late_answer(answer: StockAnswer) -> bool:
    """An answer for an order that was not PENDING: a BACKORDERED order whose stock is now
    all reserved is confirmed, the stock of a dead order is released, anything else is
    ignored. False for an unknown order."""
    try:
        order = _lock(answer.order_id)
    except Order.DoesNotExist:
        return False
    stock_reserved = answer.rejection is None
    if stock_reserved and order.status == OrderStatus.BACKORDERED:
        _confirm_backordered(order, answer)
    elif stock_reserved and order.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED):
        _release_for_dead_order(order, "stock reserved", answer.causation)
    else:
        event = "stock.reserved" if stock_reserved else "stock.rejected"
        logger.info("order %s is already %s; %s ignored", order.id, order.status, event)
    return True


def _release_for_dead_order(order: Order, what: str, causation: Envelope) -> None:
    """Inventory holds stock for an order that is CANCELLED or REJECTED (its answer raced
    the end): ``order.cancelled`` again, so inventory releases it (idempotently)."""
    reason = f"{what} after the order was {order.status.lower()}; releasing it"
    _record(order, from_status=order.status, reason=reason, causation=causation)
    _publish_cancelled(order, reason, causation)
    logger.info("order %s: %s", order.id, reason)


def _store_allocations(order: Order, allocations: Sequence[Held]) -> None:
    """Replace what the order knows of where its units are held (() when not known)."""
    order.allocations.all().delete()
    OrderAllocation.objects.bulk_create(
        [OrderAllocation(order=order, **held._asdict()) for held in allocations]
    )


def _confirm_backordered(order: Order, answer: StockAnswer) -> None:
    """BACKORDERED → CONFIRMED: the missing units arrived; the allocations are now the full
    ones, and ``order.confirmed`` is published as for an order confirmed at once."""
    _store_allocations(order, answer.allocations)
    _move(order, OrderStatus.CONFIRMED, reason="stock reserved", causation=answer.causation)
    _announce_settled(
        answer, _Moved(user_id=order.user_id, total=order.total, created_at=order.created_at)
    )


def _units(lines: Sequence[dict[str, Any]]) -> str:
    """``[{product_id, quantity}]`` in words: "2 units of product 1, 1 unit of product 4"."""
    return ", ".join(
        f"{line['quantity']} unit{'' if line['quantity'] == 1 else 's'} of product "
        f"{line['product_id']}"
        for line in lines
    )


@transaction.atomic(savepoint=False)  # inside the consumer's transaction
def order_backorder(
    *,
    order_id: uuid.UUID,
    allocations: Sequence[Held],
    waiting: Sequence[dict[str, Any]],
    causation: Envelope,
) -> None:
    """``stock.backordered``: PENDING → BACKORDERED, with what inventory holds for it now
    (``allocations``) and a history entry naming the units still missing (``waiting``), and
    ``order.backordered``.

    Any other status is a late or repeated fact and never moves the order: a CANCELLED or
    REJECTED order's held stock is released again (``order.cancelled``); BACKORDERED or later
    is ignored. ``Order.DoesNotExist`` for an unknown order."""
    order = _lock(order_id)
    if order.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED):
        _release_for_dead_order(order, "stock backordered", causation)
        return
    if order.status != OrderStatus.PENDING:
        logger.info("order %s is already %s; stock.backordered ignored", order.id, order.status)
        return
    _store_allocations(order, allocations)
    missing = [{"product_id": w["product_id"], "quantity": w["quantity"]} for w in waiting]
    _move(
        order,
        OrderStatus.BACKORDERED,
        reason=f"waiting on backorder for {_units(missing)}",
        causation=causation,
    )
    publish_event(
        "order.backordered",
        {"order_id": str(order.id), "user_id": order.user_id, "lines": missing},
        correlation_id=str(order.id),
        causation=causation,
    )
    with order_log_context(order.id):
        logger.info("order %s backordered: waiting for %s", order.id, _units(missing))


@transaction.atomic(savepoint=False)  # inside the consumer's transaction
def order_note_stock_released(*, order_id: uuid.UUID, reason: str, causation: Envelope) -> Order:
    """``stock.released``: a history entry only; the status never changes."""
    order = _lock(order_id)
    _record(
        order, from_status=order.status, reason=f"stock released: {reason}", causation=causation
    )
    logger.info("order %s: its stock was released (%s)", order.id, reason)
    return order


def orders_expire_pending(*, now: datetime | None = None, batch_size: int = 100) -> int:
    """Cancel PENDING orders past their deadline and release what they hold; how many.

    Batches commit one by one; rows another worker holds (a reservation being confirmed right
    now) are skipped and looked at again on the next run.
    """
    now = now or timezone.now()
    return _cancel_in_batches(
        Order.objects.filter(status=OrderStatus.PENDING, deadline__lt=now).order_by(
            "deadline", "id"
        ),
        reason=DEADLINE_REASON,
        batch_size=batch_size,
    )


def orders_expire_backordered(
    *, older_than: timedelta | None, now: datetime | None = None, batch_size: int = 100
) -> int:
    """Cancel BACKORDERED orders placed more than ``older_than`` ago (None: they wait as long
    as it takes) and release what they hold; how many. Batches as :func:`orders_expire_pending`
    (index ``order_backordered_age``)."""
    if older_than is None:
        return 0
    placed_before = (now or timezone.now()) - older_than
    return _cancel_in_batches(
        Order.objects.filter(status=OrderStatus.BACKORDERED, created_at__lt=placed_before).order_by(
            "created_at", "id"
        ),
        reason=BACKORDER_DEADLINE_REASON,
        batch_size=batch_size,
    )


def _cancel_in_batches(orders: QuerySet[Order], *, reason: str, batch_size: int) -> int:
    """Cancel every order of ``orders`` (filtered and ordered), ``batch_size`` a transaction,
    skipping rows another worker holds (they are looked at again on the next run)."""
    cancelled = 0
    while True:
        with transaction.atomic():
            batch = list(orders.select_for_update(skip_locked=True)[:batch_size])
            for order in batch:
                _cancel(order, reason=reason)
        cancelled += len(batch)
        if len(batch) < batch_size:
            return cancelled
