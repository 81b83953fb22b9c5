"""Placing an order: pricing its lines from the product replica, writing it with its lines and
first history entry, and announcing ``order.created``, all in one transaction; or returning the
order an Idempotency-Key already placed.

The unique constraint on ``(user_id, idempotency_key)`` decides whether a request is new, so a
new order costs no read of the orders. The rows are written by :mod:`orders.persistence`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone

from messaging import outbox
from orders import metrics, persistence
from orders.models import Order, OrderStatus
from orders.persistence import HistoryEntry, PricedLine
from orders.selectors import order_by_idempotency_key
from product_replica.selectors import ReplicaPrice, product_replicas_by_id
from service_runtime.logging import bind

logger = logging.getLogger(__name__)

MAX_TOTAL = Decimal("9999999999.99")  # what the money schema of order.confirmed can carry
PLACED_REASON = "placed"  # of a new order's first history entry
# When the replica said "not placeable" and then, read again, found nothing wrong.
CHANGED_WHILE_PLACED = "The products changed while this order was placed; send it again."


class InvalidOrder(Exception):
    """The request cannot become an order; ``errors`` is shaped like a serializer's."""

    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__(errors)
        self.errors = errors


class IdempotencyKeyReused(Exception):
    """The key already placed an order with a different body."""


@dataclass(frozen=True)
class LineRequest:
    product_id: int
    quantity: int


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
        placement = _order_create(
            user_id=user_id, idempotency_key=idempotency_key, fingerprint=fingerprint, lines=lines
        )
    except (InvalidOrder, IntegrityError):
        # A retry, or a concurrent request that won the race (the insert met the constraint),
        # or lines that cannot be placed any more (a product gone since): the order this key
        # already placed, if there is one, exactly as if it had been looked up first.
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
            len(placement.lines),
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


def _well_formed(lines: Sequence[LineRequest]) -> bool:
    """Lines that only the replica can still refuse: some, each product once, quantities of
    at least 1 (anything else gets its errors from :func:`_price`)."""
    products = {line.product_id for line in lines}
    return bool(lines) and len(products) == len(lines) and all(x.quantity >= 1 for x in lines)


def _replicas(lines: Sequence[LineRequest]) -> dict[int, ReplicaPrice]:
    return product_replicas_by_id(product_ids=[x.product_id for x in lines])


def _order_create(
    *, user_id: int, idempotency_key: str, fingerprint: str, lines: Sequence[LineRequest]
) -> Placement:
    """Write a new PENDING order, its lines priced from the replica, its first history entry
    and ``order.created``, and publish the event once that has committed; raise
    :class:`InvalidOrder` when the lines cannot be placed.

    On PostgreSQL the statement that writes the order prices its lines (one statement, so one
    transaction, and no read of the prices first); only when it found them not placeable are
    the replicas read, to say why. Elsewhere the lines are priced first, then written by the
    ORM. The order's id comes from its model default and every timestamp from one reading of
    this process's clock.
    """
    in_statement = persistence.prices_in_statement() and _well_formed(lines)
    priced = [] if in_statement else _price(lines, _replicas(lines))
    now = timezone.now()
    order = Order(
        user_id=user_id,
        status=OrderStatus.PENDING,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
        created_at=now,
        updated_at=now,
        deadline=now + timedelta(seconds=settings.ORDER_PENDING_DEADLINE_SECONDS),
    )
    event = outbox.event_row(
        "order.created",
        {
            "order_id": str(order.id),
            "user_id": user_id,
            "lines": [{"product_id": x.product_id, "quantity": x.quantity} for x in lines],
        },
        correlation_id=str(order.id),
    )
    entry = HistoryEntry(
        from_status="",
        to_status=OrderStatus.PENDING.value,
        reason=PLACED_REASON,
        at=now,
        caused_by_message_id=None,
        actor_user_id=user_id,
    )
    if in_statement:
        requested = [(x.product_id, x.quantity) for x in lines]
        written = persistence.order_insert_priced(order, requested, entry, event, MAX_TOTAL)
        if written is None:
            _price(lines, _replicas(lines))  # raises, saying why
            raise InvalidOrder({"lines": [CHANGED_WHILE_PLACED]})  # it changed since
        priced = written
    else:
        order.total = sum((line.line_total for line in priced), Decimal("0.00"))
        entry = persistence.order_insert(order, priced, entry, event)
    metrics.order_placed()
    outbox.announce([event])
    return Placement(order=order, created=True, lines=tuple(priced), history=(entry,))
