"""What the orders service does with each event it consumes: the whole list is ``HANDLERS``.

Each handler runs inside the consumer's transaction, together with the inbox row that makes
a redelivery a no-op.

An event about an order this service has never seen is dead-lettered (``RejectMessage``), not
retried: ``order.created`` is published only after the order is committed here and orders are
never deleted, so no retry can make it appear. In the dead-letter queue an operator sees it,
e.g. a reservation that inventory holds for a phantom order.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from messaging.consumer import BatchHandler, Handler, Rejections, RejectMessage
from messaging.envelope import Envelope
from orders.models import Order
from orders.services import (
    Held,
    StockAnswer,
    held_units,
    order_backorder,
    order_confirm_reservation,
    order_note_stock_released,
    order_reject_reservation,
    orders_settle_reservations,
)
from product_replica.services import product_replica_upsert


def _order_id(envelope: Envelope) -> uuid.UUID:
    try:
        return uuid.UUID(envelope.data["order_id"])
    except ValueError as exc:
        raise RejectMessage(f"order_id {envelope.data['order_id']!r} is not a UUID") from exc


def _unknown(envelope: Envelope) -> RejectMessage:
    return RejectMessage(f"{envelope.type} for unknown order {envelope.data['order_id']}")


def _held(envelope: Envelope) -> tuple[Held, ...]:
    """Where stock.reserved (or stock.backordered) says the units are held: () when not
    known (stock.reserved version 1)."""
    return held_units(envelope.data.get("allocations", ()))


def on_stock_reserved(envelope: Envelope) -> None:
    try:
        order_confirm_reservation(
            order_id=_order_id(envelope), allocations=_held(envelope), causation=envelope
        )
    except Order.DoesNotExist as exc:
        raise _unknown(envelope) from exc


def on_stock_rejected(envelope: Envelope) -> None:
    try:
        order_reject_reservation(
            order_id=_order_id(envelope),
            reason=envelope.data["reason"],
            lines=envelope.data["lines"],
            causation=envelope,
        )
    except Order.DoesNotExist as exc:
        raise _unknown(envelope) from exc


def on_stock_answer_batch(envelopes: Sequence[Envelope]) -> Rejections:
    """``stock.reserved`` and ``stock.rejected`` of a batch, in their order: every PENDING
    order confirmed or rejected by one statement."""
    rejected: dict[str, RejectMessage] = {}
    answers: list[StockAnswer] = []
    for envelope in envelopes:
        try:
            order_id = _order_id(envelope)
        except RejectMessage as exc:
            rejected[envelope.id] = exc
            continue
        if envelope.type == "stock.reserved":
            answers.append(
                StockAnswer(order_id=order_id, causation=envelope, allocations=_held(envelope))
            )
        else:
            data = envelope.data
            answers.append(
                StockAnswer(
                    order_id=order_id,
                    causation=envelope,
                    rejection=data["reason"],
                    rejected_lines=data["lines"],
                )
            )
    unknown = orders_settle_reservations(answers=answers)
    for answer in answers:
        if answer.order_id in unknown:
            rejected[answer.causation.id] = _unknown(answer.causation)
    return rejected


def on_stock_backordered(envelope: Envelope) -> None:
    try:
        order_backorder(
            order_id=_order_id(envelope),
            allocations=_held(envelope),
            waiting=envelope.data["waiting"],
            causation=envelope,
        )
    except Order.DoesNotExist as exc:
        raise _unknown(envelope) from exc


def on_stock_released(envelope: Envelope) -> None:
    try:
        order_note_stock_released(
            order_id=_order_id(envelope), reason=envelope.data["reason"], causation=envelope
        )
    except Order.DoesNotExist as exc:
        raise _unknown(envelope) from exc


def on_product_upserted(envelope: Envelope) -> None:
    try:
        occurred_at = datetime.fromisoformat(envelope.occurred_at)
    except ValueError as exc:
        raise RejectMessage(f"occurred_at {envelope.occurred_at!r} is not ISO 8601") from exc
    data = envelope.data
    product_replica_upsert(
        product_id=data["product_id"],
        sku=data["sku"],
        name=data["name"],
        price=Decimal(data["price"]),
        active=data["active"],
        category=data["category"],
        occurred_at=occurred_at if occurred_at.tzinfo else occurred_at.replace(tzinfo=UTC),
    )


HANDLERS: dict[str, Handler] = {
    "stock.reserved": BatchHandler(one=on_stock_reserved, many=on_stock_answer_batch),
    "stock.rejected": BatchHandler(one=on_stock_rejected, many=on_stock_answer_batch),
    "stock.released": on_stock_released,
    "stock.backordered": on_stock_backordered,
    "product.upserted": on_product_upserted,
}
