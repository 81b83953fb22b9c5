"""What inventory does when the orders service speaks: event type -> handler, in one place."""

from __future__ import annotations

import time

from messaging.consumer import Handler, RejectMessage
from messaging.envelope import Envelope
from stock.metrics import reservation_decided
from stock.services import ReservationMissing, stock_release, stock_reserve, stock_ship


def on_order_created(envelope: Envelope) -> None:
    data = envelope.data
    started = time.perf_counter()
    reservation = stock_reserve(
        order_id=data["order_id"], user_id=data["user_id"], lines=data["lines"], causation=envelope
    )
    reservation_decided(reservation.status, time.perf_counter() - started)


def on_order_cancelled(envelope: Envelope) -> None:
    data = envelope.data
    stock_release(
        order_id=data["order_id"],
        user_id=data["user_id"],
        reason=data["reason"],
        causation=envelope,
    )


def on_order_shipped(envelope: Envelope) -> None:
    try:
        stock_ship(order_id=envelope.data["order_id"], causation=envelope)
    except ReservationMissing as exc:
        # Orders ships only what we confirmed, so retrying cannot help: an operator must look.
        raise RejectMessage(str(exc)) from exc


HANDLERS: dict[str, Handler] = {
    "order.created": on_order_created,
    "order.cancelled": on_order_cancelled,
    "order.shipped": on_order_shipped,
}
