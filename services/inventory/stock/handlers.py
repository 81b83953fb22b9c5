"""What inventory does when the orders service speaks: event type -> handler, in one place."""

from __future__ import annotations

import time
from collections.abc import Sequence

from messaging.consumer import BatchHandler, Handler, Rejections, RejectMessage
from messaging.envelope import Envelope
from stock.availability import ShipmentRefused
from stock.metrics import reservation_decided
from stock.services import (
    OrderToReserve,
    ReservationMissing,
    ReturnUnknownProduct,
    Shipment,
    stock_receive_return,
    stock_release,
    stock_reserve_many,
    stock_ship,
)


def on_order_created(envelope: Envelope) -> None:
    on_order_created_batch([envelope])


def on_order_created_batch(envelopes: Sequence[Envelope]) -> Rejections:
    """A batch of orders reserved with one lock of their products and one write."""
    started = time.perf_counter()
    orders = [
        OrderToReserve(
            order_id=envelope.data["order_id"],
            user_id=envelope.data["user_id"],
            lines=envelope.data["lines"],
            causation=envelope,
        )
        for envelope in envelopes
    ]
    reservations = stock_reserve_many(orders=orders)
    seconds = (time.perf_counter() - started) / len(envelopes)
    for reservation in reservations:
        reservation_decided(reservation.status, seconds)
    return {}


def on_order_cancelled(envelope: Envelope) -> None:
    data = envelope.data
    stock_release(
        order_id=data["order_id"],
        user_id=data["user_id"],
        reason=data["reason"],
        causation=envelope,
    )


def on_order_shipped(envelope: Envelope) -> None:
    """One shipment of the order (version 1, read as version 2: everything left, at once)."""
    data = envelope.data
    shipment = Shipment(
        shipment_id=data["shipment_id"],
        warehouse=data["warehouse"],
        lines={int(line["product_id"]): int(line["quantity"]) for line in data["lines"]},
    )
    try:
        stock_ship(order_id=data["order_id"], causation=envelope, shipment=shipment)
    except (ReservationMissing, ShipmentRefused) as exc:
        # Orders ships only what we confirmed, so retrying cannot help: an operator must look.
        raise RejectMessage(str(exc)) from exc


def on_return_received(envelope: Envelope) -> None:
    """Returned units arrived: restocked ones back on hand, damaged ones written off."""
    data = envelope.data
    try:
        stock_receive_return(
            return_id=data["return_id"],
            order_id=data["order_id"],
            warehouse=data["warehouse"],
            lines=data["lines"],
            causation=envelope,
        )
    except ReturnUnknownProduct as exc:
        # Only products sold here are returned: an operator must look.
        raise RejectMessage(str(exc)) from exc


HANDLERS: dict[str, Handler] = {
    "order.created": BatchHandler(one=on_order_created, many=on_order_created_batch),
    "order.cancelled": on_order_cancelled,
    "order.shipped": on_order_shipped,
    "return.received": on_return_received,
}
