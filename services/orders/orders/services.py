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
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection, models, transaction
from django.utils import timezone

from messaging.envelope import Envelope
from messaging.outbox import publish_event
from orders import metrics
from orders.models import TRANSITIONS, Order, OrderStatus, OrderStatusChange
from orders.placement import (  # noqa: F401 - the placing API, re-exported
    IdempotencyKeyReused,
    InvalidOrder,
    LineRequest,
    Placement,
    order_log_context,
    order_place,
    request_fingerprint,
)

logger = logging.getLogger(__name__)

DEADLINE_REASON = "deadline exceeded"


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
