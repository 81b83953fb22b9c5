"""Messages as the orders service would send them, and what inventory wrote to its outbox."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TypeVar

from django.db import connection

from messaging.envelope import Envelope, decode
from messaging.models import OutboxMessage
from stock.models import StockLevel
from stock.services import stock_adjust

STAFF_ID = 1
CUSTOMER_ID = 42


def order_created(lines: list[tuple[int, int]], order_id: str | None = None) -> Envelope:
    order_id = order_id or str(uuid.uuid4())
    data = {
        "order_id": order_id,
        "user_id": CUSTOMER_ID,
        "lines": [{"product_id": pid, "quantity": quantity} for pid, quantity in lines],
    }
    return Envelope.new("order.created", data, source="orders", correlation_id=order_id)


def order_cancelled(order_id: str, reason: str = "customer changed their mind") -> Envelope:
    data = {"order_id": order_id, "user_id": CUSTOMER_ID, "reason": reason}
    return Envelope.new("order.cancelled", data, source="orders", correlation_id=order_id)


def order_shipped(order_id: str) -> Envelope:
    """Version 1, "the whole order has shipped", as orders publishes it until told otherwise,
    read as the consumer reads it (brought up to the newest version)."""
    data = {"order_id": order_id, "user_id": CUSTOMER_ID}
    sent = Envelope.new("order.shipped", data, source="orders", correlation_id=order_id, version=1)
    return decode(as_body(sent))


def order_shipment(
    order_id: str,
    shipment_id: int | None,
    warehouse: str | None,
    lines: list[tuple[int, int]],
    *,
    complete: bool = False,
) -> Envelope:
    """Version 2: one shipment of ``lines`` (product id, units) from ``warehouse``, checked
    against its schema as the consumer reads it."""
    data = {
        "order_id": order_id,
        "user_id": CUSTOMER_ID,
        "shipment_id": shipment_id,
        "warehouse": warehouse,
        "lines": [{"product_id": pid, "quantity": quantity} for pid, quantity in lines],
        "complete": complete,
    }
    sent = Envelope.new("order.shipped", data, source="orders", correlation_id=order_id, version=2)
    return decode(as_body(sent))


def return_received(
    order_id: str,
    return_id: int,
    warehouse: str,
    lines: list[tuple[int, int, int]],
    refund_amount: str = "10.00",
) -> Envelope:
    """Staff received a return: ``lines`` of (product id, restocked, damaged), checked against
    the event's schema as the consumer reads it."""
    data = {
        "order_id": order_id,
        "user_id": CUSTOMER_ID,
        "return_id": return_id,
        "warehouse": warehouse,
        "lines": [
            {"product_id": pid, "restocked": restocked, "damaged": damaged}
            for pid, restocked, damaged in lines
        ],
        "refund_amount": refund_amount,
    }
    sent = Envelope.new("return.received", data, source="orders", correlation_id=order_id)
    return decode(as_body(sent))


def add_stock(product_id: int, units: int, warehouse: str | None = None) -> None:
    """Units delivered to a warehouse (by its code; None: the default one), as staff adjust."""
    stock_adjust(
        product_id=product_id,
        delta=units,
        reason="delivery",
        actor_id=STAFF_ID,
        correlation_id="test",
        warehouse=warehouse,
    )


def stock_by_warehouse(product_id: int) -> dict[str, tuple[int, int]]:
    """(on_hand, reserved) of a product per warehouse code."""
    levels = StockLevel.objects.filter(product_id=product_id).select_related("warehouse")
    return {level.warehouse.code: (level.on_hand, level.reserved) for level in levels}


def as_body(envelope: Envelope) -> bytes:
    return envelope.to_json().encode()


def published(event_type: str) -> list[Envelope]:
    """Events of this type in the outbox, oldest first, each re-validated against its schema
    and shown as published: in its version and that version's payload (a consumer of the
    newest version reads it brought up to date)."""
    rows = OutboxMessage.objects.filter(routing_key=event_type).order_by("id")
    return [_as_published(row.body) for row in rows]


def _as_published(body: str) -> Envelope:
    raw = json.loads(body)
    return replace(decode(body.encode()), version=raw["version"], data=raw["data"])


def published_types() -> list[str]:
    return list(OutboxMessage.objects.order_by("id").values_list("routing_key", flat=True))


T = TypeVar("T")
R = TypeVar("R")


def all_at_once(work: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``work(item)`` for each item on its own thread and database connection, all released
    together; their results, in the order they finished. Fails if any raised."""
    start = threading.Barrier(len(items))
    results: list[R] = []
    errors: list[Exception] = []

    def run(item: T) -> None:
        try:
            start.wait()
            results.append(work(item))
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    return results
