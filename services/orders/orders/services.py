"""Writes to orders. Every state change and the event announcing it share one transaction.

Transitions are guarded by :data:`orders.models.TRANSITIONS` under a row lock (taken by
``SELECT ... FOR UPDATE``, or by a conditional ``UPDATE ... WHERE status = ...`` that is the lock
and the check in one statement), so a late or redelivered event never moves an order backwards
and concurrent writers serialise.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from messaging.envelope import Envelope
from messaging.outbox import publish_event
from orders import metrics
from orders.models import TRANSITIONS, Order, OrderLine, OrderStatus, OrderStatusChange
from orders.selectors import order_by_idempotency_key
from product_replica.selectors import ReplicaPrice, product_replicas_by_id
from service_runtime.logging import bind

logger = logging.getLogger(__name__)

MAX_TOTAL = Decimal("9999999999.99")  # what the money schema of order.confirmed can carry
DEADLINE_REASON = "deadline exceeded"
PLACED_REASON = "placed"  # of a new order's first history entry


class InvalidOrder(Exception):
    """The request cannot become an order; ``errors`` is shaped like a serializer's."""

    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__(errors)
        self.errors = errors


class IdempotencyKeyReused(Exception):
    """The key already placed an order with a different body."""


class TransitionNotAllowed(Exception):
    """The order's status does not allow the requested change."""


@dataclass(frozen=True)
class LineRequest:
    product_id: int
    quantity: int


class PricedLine(NamedTuple):
    """A line priced from the replica: the values its ``OrderLine`` row is written with."""

    product_id: int
    sku: str
    name: str
    unit_price: Decimal
    quantity: int
    line_total: Decimal


class HistoryEntry(NamedTuple):
    """The values of an ``OrderStatusChange`` row as written (all but its ids)."""

    from_status: str
    to_status: str
    reason: str
    at: datetime
    caused_by_message_id: uuid.UUID | None
    actor_user_id: int | None


@dataclass(frozen=True)
class Placement:
    """What :func:`order_place` did. A new order comes with the values its lines and first
    history entry were written with (in the order a read would give them), so it can be shown
    without reading it back; a replay comes with none (read the order's details)."""

    order: Order
    created: bool  # False when the idempotency key replayed an earlier placement
    lines: tuple[PricedLine, ...] = ()
    history: tuple[HistoryEntry, ...] = ()


def request_fingerprint(lines: Sequence[LineRequest]) -> str:
    """The same lines in any order give the same fingerprint."""
    canonical = sorted([line.product_id, line.quantity] for line in lines)
    return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()


def order_place(*, user_id: int, idempotency_key: str, lines: Sequence[LineRequest]) -> Placement:
    """Place an order priced from the replica, or return the one this key already placed.

    The order, its lines, its first history entry and ``order.created`` are written in one
    transaction. The key is not looked up first: the unique constraint on
    ``(user_id, idempotency_key)`` decides, so a new order costs no read of the orders. When the
    insert meets the constraint (a retry, or a concurrent request that won the race), or when
    the lines cannot be placed any more (a product gone since), the order this key already
    placed is returned if there is one, exactly as if it had been looked up first. A new order
    comes with the values of its lines and history (see :class:`Placement`).
    """
    fingerprint = request_fingerprint(lines)
    try:
        priced = _price(lines, product_replicas_by_id(product_ids=[x.product_id for x in lines]))
    except InvalidOrder:
        existing = order_by_idempotency_key(user_id=user_id, idempotency_key=idempotency_key)
        if existing is None:
            raise
        return _replay(existing, fingerprint)
    try:
        with transaction.atomic():
            placement = _order_create(
                user_id=user_id,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
                lines=priced,
            )
    except IntegrityError:
        existing = order_by_idempotency_key(user_id=user_id, idempotency_key=idempotency_key)
        if existing is None:
            raise
        return _replay(existing, fingerprint)
    order = placement.order
    with order_log_context(order.id):
        logger.info(
            "order %s placed by user %s: %d line(s), total %s; PENDING until stock is reserved",
            order.id,
            user_id,
            len(priced),
            order.total,
        )
    return placement


def order_log_context(order_id: uuid.UUID | str) -> Any:
    """Log lines about one order carry its id as their correlation id, like its events."""
    return bind(correlation_id=order_id, order_id=order_id)


def _replay(order: Order, fingerprint: str) -> Placement:
    if order.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used for a different order; "
            "use a new key for a new order."
        )
    with order_log_context(order.id):
        logger.info("order %s returned again for its Idempotency-Key", order.id)
    return Placement(order=order, created=False)


def _price(lines: Sequence[LineRequest], replicas: dict[int, ReplicaPrice]) -> list[PricedLine]:
    if not lines:
        raise InvalidOrder({"lines": ["An order needs at least one line."]})
    errors: list[dict[str, list[str]]] = []
    seen: set[int] = set()
    priced = []
    for line in lines:
        problems: dict[str, list[str]] = {}
        replica = replicas.get(line.product_id)
        if line.product_id in seen:
            problems["product_id"] = [
                f"Product {line.product_id} appears twice; send one line per product."
            ]
        elif replica is None:
            problems["product_id"] = [f"Product {line.product_id} does not exist."]
        elif not replica.active:
            problems["product_id"] = [f"Product {line.product_id} is not available."]
        if line.quantity < 1:
            problems["quantity"] = ["Ensure this value is greater than or equal to 1."]
        seen.add(line.product_id)
        errors.append(problems)
        if replica is not None and not problems:
            priced.append(
                PricedLine(
                    product_id=replica.product_id,
                    sku=replica.sku,
                    name=replica.name,
                    unit_price=replica.price,
                    quantity=line.quantity,
                    line_total=replica.price * line.quantity,
                )
            )
    if any(errors):
        raise InvalidOrder({"lines": errors})
    if sum((line.line_total for line in priced), Decimal(0)) > MAX_TOTAL:
        raise InvalidOrder({"lines": [f"The order total may not exceed {MAX_TOTAL}."]})
    return priced


def _order_create(
    *, user_id: int, idempotency_key: str, fingerprint: str, lines: list[PricedLine]
) -> Placement:
    """Write a new PENDING order, its lines and its first history entry, and announce it.

    PostgreSQL takes :func:`_order_insert` (one written-out statement), other databases
    (SQLite) :func:`_order_create_orm`; both store the same values.
    """
    write = _order_insert if connection.vendor == "postgresql" else _order_create_orm
    order, placed = write(
        user_id=user_id, idempotency_key=idempotency_key, fingerprint=fingerprint, lines=lines
    )
    metrics.order_placed()
    publish_event(
        "order.created",
        {
            "order_id": str(order.id),
            "user_id": user_id,
            "lines": [{"product_id": x.product_id, "quantity": x.quantity} for x in lines],
        },
        correlation_id=str(order.id),
    )
    return Placement(order=order, created=True, lines=tuple(lines), history=(placed,))


def _order_create_orm(
    *, user_id: int, idempotency_key: str, fingerprint: str, lines: list[PricedLine]
) -> tuple[Order, HistoryEntry]:
    """The ORM way of :func:`_order_create`: three inserts, each compiled by Django."""
    order = Order.objects.create(
        user_id=user_id,
        status=OrderStatus.PENDING,
        total=sum((line.line_total for line in lines), Decimal("0.00")),
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
        deadline=timezone.now() + timedelta(seconds=settings.ORDER_PENDING_DEADLINE_SECONDS),
    )
    OrderLine.objects.bulk_create([OrderLine(order=order, **line._asdict()) for line in lines])
    placed = OrderStatusChange.objects.create(
        order=order, to_status=OrderStatus.PENDING, reason=PLACED_REASON, actor_user_id=user_id
    )
    return order, HistoryEntry(
        from_status=placed.from_status,
        to_status=placed.to_status,
        reason=placed.reason,
        at=placed.at,
        caused_by_message_id=placed.caused_by_message_id,
        actor_user_id=placed.actor_user_id,
    )


def _order_insert(
    *, user_id: int, idempotency_key: str, fingerprint: str, lines: list[PricedLine]
) -> tuple[Order, HistoryEntry]:
    """The PostgreSQL way of :func:`_order_create`: the three rows in one statement
    (:func:`_order_insert_sql`), with the values :func:`_order_create_orm` stores.

    The order's id comes from its model default and every timestamp from this process's
    clock, as with the ORM; one reading of it serves them all (the ORM reads it per field,
    microseconds apart). A key placed before meets the unique constraint on
    ``(user_id, idempotency_key)`` and the statement fails with ``IntegrityError``, as the
    ORM's insert does, and writes nothing.
    """
    now = timezone.now()
    order = Order(
        user_id=user_id,
        status=OrderStatus.PENDING,
        total=sum((line.line_total for line in lines), Decimal("0.00")),
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
        created_at=now,
        updated_at=now,
        deadline=now + timedelta(seconds=settings.ORDER_PENDING_DEADLINE_SECONDS),
    )
    placed = HistoryEntry(
        from_status="",
        to_status=OrderStatus.PENDING,
        reason=PLACED_REASON,
        at=now,
        caused_by_message_id=None,
        actor_user_id=user_id,
    )
    rejected_lines = Order._meta.get_field("rejected_lines")
    assert isinstance(rejected_lines, models.Field)
    params: dict[str, Any] = {
        "id": order.id,
        "user_id": order.user_id,
        "status": OrderStatus.PENDING.value,
        "total": order.total,
        "rejection_reason": order.rejection_reason,
        "rejected_lines": rejected_lines.get_db_prep_save(order.rejected_lines, connection),
        "cancellation_reason": order.cancellation_reason,
        "idempotency_key": order.idempotency_key,
        "request_fingerprint": order.request_fingerprint,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "deadline": order.deadline,
        # The lines as one array per column, in request order.
        "product_ids": [line.product_id for line in lines],
        "skus": [line.sku for line in lines],
        "names": [line.name for line in lines],
        "unit_prices": [line.unit_price for line in lines],
        "quantities": [line.quantity for line in lines],
        "line_totals": [line.line_total for line in lines],
        # The first history entry.
        "from_status": placed.from_status,
        "to_status": OrderStatus.PENDING.value,
        "reason": placed.reason,
        "at": placed.at,
        "caused_by_message_id": placed.caused_by_message_id,
        "actor_user_id": placed.actor_user_id,
    }
    with connection.cursor() as cursor:
        cursor.execute(_order_insert_sql(), params)
    # Now a stored row, as ``Order.objects.create`` leaves it (a later save() updates it).
    order._state.adding = False
    order._state.db = connection.alias
    return order, placed


@functools.cache
def _order_insert_sql() -> str:
    """The statement of :func:`_order_insert` on PostgreSQL; its text is the same every time,
    so psycopg prepares it once per connection.

    Three inserts in one round trip, none reading another's output (the lines and the history
    entry name the order by the id it is given): ``new_order``; ``new_lines``, from one array
    per column (``unnest`` yields them in array order, so their ids follow the request as
    ``bulk_create``'s do); then the history entry. Django's foreign keys are checked at commit,
    so the order in which PostgreSQL runs the three does not matter.
    """
    qn = connection.ops.quote_name
    order, line, change = (qn(m._meta.db_table) for m in (Order, OrderLine, OrderStatusChange))
    return f"""
        WITH new_order AS (
            INSERT INTO {order} (
                "id", "user_id", "status", "total", "rejection_reason", "rejected_lines",
                "cancellation_reason", "idempotency_key", "request_fingerprint",
                "created_at", "updated_at", "deadline"
            ) VALUES (
                %(id)s, %(user_id)s, %(status)s, %(total)s, %(rejection_reason)s,
                %(rejected_lines)s, %(cancellation_reason)s, %(idempotency_key)s,
                %(request_fingerprint)s, %(created_at)s, %(updated_at)s, %(deadline)s
            )
        ), new_lines AS (
            INSERT INTO {line} (
                "order_id", "product_id", "sku", "name", "unit_price", "quantity", "line_total"
            )
            SELECT %(id)s::uuid, product_id, sku, name, unit_price, quantity, line_total
            FROM unnest(
                %(product_ids)s::bigint[], %(skus)s::text[], %(names)s::text[],
                %(unit_prices)s::numeric[], %(quantities)s::integer[], %(line_totals)s::numeric[]
            ) AS priced (product_id, sku, name, unit_price, quantity, line_total)
        )
        INSERT INTO {change} (
            "order_id", "from_status", "to_status", "reason", "at", "caused_by_message_id",
            "actor_user_id"
        ) VALUES (
            %(id)s, %(from_status)s, %(to_status)s, %(reason)s, %(at)s, %(caused_by_message_id)s,
            %(actor_user_id)s
        )
    """  # noqa: S608 (names come from the models)


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


@dataclass(frozen=True)
class _Moved:
    """What the event and the metrics need of an order that :func:`_move_pending` moved."""

    user_id: int
    total: Decimal
    created_at: datetime


def _move_pending(
    order_id: uuid.UUID,
    to_status: str,
    *,
    reason: str,
    causation: Envelope,
    also_set: Mapping[str, Any] | None = None,
) -> _Moved | None:
    """PENDING → ``to_status`` (setting ``also_set`` too), with its history entry; None, and
    nothing written, when the order is not PENDING or does not exist.

    On PostgreSQL this is one statement (:func:`_move_pending_sql`): ``UPDATE ... WHERE
    status = 'PENDING' RETURNING`` is the row lock and the check at once (a concurrent writer's
    change is waited for and re-checked), and the history row is inserted from what it returned.
    It only writes, so it can run many times in one transaction (the consumer's batches). Other
    databases take the ORM way: lock, check, save, insert.
    """
    if to_status not in TRANSITIONS[OrderStatus.PENDING]:
        raise TransitionNotAllowed(f"A PENDING order cannot become {to_status}.")
    also_set = also_set or {}
    if connection.vendor != "postgresql":
        order = _lock(order_id)
        if order.status != OrderStatus.PENDING:
            return None
        for name, value in also_set.items():
            setattr(order, name, value)
        _move(order, to_status, reason=reason, causation=causation, also_update=tuple(also_set))
        return _Moved(user_id=order.user_id, total=order.total, created_at=order.created_at)
    now = timezone.now()
    params: dict[str, Any] = {
        "order_id": order_id,
        "pending": OrderStatus.PENDING.value,
        "to_status": to_status,
        "now": now,
        "reason": reason,
        "causation_id": uuid.UUID(causation.id),
    }
    for name, value in also_set.items():
        field = Order._meta.get_field(name)
        assert isinstance(field, models.Field)
        params[name] = field.get_db_prep_save(value, connection)  # e.g. JSON for rejected_lines
    with connection.cursor() as cursor:
        cursor.execute(_move_pending_sql(tuple(also_set)), params)
        row = cursor.fetchone()
    if row is None:
        return None
    moved = _Moved(user_id=row[0], total=row[1], created_at=row[2])
    metrics.order_moved(
        from_status=OrderStatus.PENDING, to_status=to_status, placed_at=moved.created_at
    )
    return moved


@functools.cache
def _move_pending_sql(also_set: tuple[str, ...]) -> str:
    """The statement of :func:`_move_pending` on PostgreSQL; its text is the same every time,
    so psycopg prepares it once per connection.

    ``moved`` is the conditional update, ``noted`` the history row that
    :func:`_record` would write for it (``actor_user_id`` stays NULL: an event is no caller).
    """
    qn = connection.ops.quote_name
    order, change = Order._meta, OrderStatusChange._meta
    assignments = "".join(f", {qn(name)} = %({name})s" for name in also_set)
    return f"""
        WITH moved AS (
            UPDATE {qn(order.db_table)}
            SET {qn("status")} = %(to_status)s, {qn("updated_at")} = %(now)s{assignments}
            WHERE {qn("id")} = %(order_id)s AND {qn("status")} = %(pending)s
            RETURNING {qn("id")}, {qn("user_id")}, {qn("total")}, {qn("created_at")}
        ), noted AS (
            INSERT INTO {qn(change.db_table)} (
                {qn("order_id")}, {qn("from_status")}, {qn("to_status")}, {qn("reason")},
                {qn("at")}, {qn("caused_by_message_id")}
            )
            SELECT {qn("id")}, %(pending)s, %(to_status)s, %(reason)s, %(now)s, %(causation_id)s
            FROM moved
        )
        SELECT {qn("user_id")}, {qn("total")}, {qn("created_at")} FROM moved
    """  # noqa: S608 (names come from the models)


def _publish_cancelled(order: Order, reason: str, causation: Envelope | None = None) -> None:
    publish_event(
        "order.cancelled",
        {"order_id": str(order.id), "user_id": order.user_id, "reason": reason},
        correlation_id=str(order.id),
        causation=causation,
    )


def _cancel(order: Order, *, reason: str, actor_user_id: int | None = None) -> None:
    if OrderStatus.CANCELLED not in TRANSITIONS[order.status]:
        raise TransitionNotAllowed(
            f"Only PENDING or CONFIRMED orders can be cancelled; this one is {order.status}."
        )
    order.cancellation_reason = reason
    _move(
        order,
        OrderStatus.CANCELLED,
        reason=reason,
        actor_user_id=actor_user_id,
        also_update=("cancellation_reason",),
    )
    _publish_cancelled(order, reason)
    with order_log_context(order.id):
        logger.info("order %s cancelled: %s", order.id, reason)


@transaction.atomic
def order_cancel(*, order_id: uuid.UUID, reason: str, actor_user_id: int | None = None) -> Order:
    """PENDING or CONFIRMED → CANCELLED, and ``order.cancelled`` so inventory releases."""
    with order_log_context(order_id):
        order = _lock(order_id)
        _cancel(order, reason=reason, actor_user_id=actor_user_id)
    return order


@transaction.atomic
def order_ship(*, order_id: uuid.UUID, actor_user_id: int | None = None) -> Order:
    """CONFIRMED → SHIPPED, and ``order.shipped`` so inventory ships the reserved stock."""
    order = _lock(order_id)
    if order.status != OrderStatus.CONFIRMED:
        raise TransitionNotAllowed(
            f"Only CONFIRMED orders can be shipped; this one is {order.status}."
        )
    _move(order, OrderStatus.SHIPPED, reason="shipped", actor_user_id=actor_user_id)
    publish_event(
        "order.shipped",
        {"order_id": str(order.id), "user_id": order.user_id},
        correlation_id=str(order.id),
    )
    with order_log_context(order.id):
        logger.info("order %s shipped by user %s", order.id, actor_user_id)
    return order


@transaction.atomic(savepoint=False)  # inside the consumer's transaction
def order_confirm_reservation(*, order_id: uuid.UUID, causation: Envelope) -> None:
    """``stock.reserved``: PENDING → CONFIRMED; a reservation for a dead order is released.

    CANCELLED (cancel or deadline raced the reservation) or REJECTED: ``order.cancelled`` is
    published again so inventory releases the stock (its release is idempotent). CONFIRMED or
    SHIPPED: a repeat, nothing to do. ``Order.DoesNotExist`` for an unknown order.

    The usual case, a PENDING order, is one statement before the event (see
    :func:`_move_pending`); the order is read only when it was not PENDING.
    """
    moved = _move_pending(
        order_id, OrderStatus.CONFIRMED, reason="stock reserved", causation=causation
    )
    if moved is not None:
        publish_event(
            "order.confirmed",
            {"order_id": str(order_id), "user_id": moved.user_id, "total": f"{moved.total:.2f}"},
            correlation_id=str(order_id),
            causation=causation,
        )
        logger.info("order %s confirmed: stock reserved, total %s", order_id, moved.total)
        return
    order = _lock(order_id)
    if order.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED):
        reason = f"stock reserved after the order was {order.status.lower()}; releasing it"
        _record(order, from_status=order.status, reason=reason, causation=causation)
        _publish_cancelled(order, reason, causation)
        logger.info("order %s: %s", order.id, reason)
    else:
        logger.info("order %s is already %s; stock.reserved ignored", order.id, order.status)


@transaction.atomic(savepoint=False)  # inside the consumer's transaction
def order_reject_reservation(
    *, order_id: uuid.UUID, reason: str, lines: list[dict[str, Any]], causation: Envelope
) -> None:
    """``stock.rejected``: PENDING → REJECTED with the reasons; otherwise a late event, ignored.

    ``Order.DoesNotExist`` for an unknown order. Like :func:`order_confirm_reservation`, one
    statement before the event when the order is PENDING.
    """
    moved = _move_pending(
        order_id,
        OrderStatus.REJECTED,
        reason=reason,
        causation=causation,
        also_set={"rejection_reason": reason, "rejected_lines": lines},
    )
    if moved is not None:
        publish_event(
            "order.rejected",
            {"order_id": str(order_id), "user_id": moved.user_id, "reason": reason},
            correlation_id=str(order_id),
            causation=causation,
        )
        logger.info("order %s rejected: %s", order_id, reason)
        return
    order = _lock(order_id)
    logger.info("order %s is already %s; stock.rejected ignored", order.id, order.status)


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
    expired = 0
    while True:
        with transaction.atomic():
            batch = list(
                Order.objects.select_for_update(skip_locked=True)
                .filter(status=OrderStatus.PENDING, deadline__lt=now)
                .order_by("deadline", "id")[:batch_size]
            )
            for order in batch:
                _cancel(order, reason=DEADLINE_REASON)
        expired += len(batch)
        if len(batch) < batch_size:
            return expired
