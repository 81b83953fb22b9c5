"""For the orders tests: the callers, events as inventory would send them, the outbox decoded."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

from messaging.envelope import Envelope, decode
from messaging.models import OutboxMessage

CUSTOMER_ID = 1
OTHER_CUSTOMER_ID = 2
STAFF_ID = 99


def product_upserted(
    product_id: int,
    *,
    price: str = "10.00",
    active: bool = True,
    name: str | None = None,
    occurred_at: datetime | None = None,
) -> Envelope:
    envelope = Envelope.new(
        "product.upserted",
        {
            "product_id": product_id,
            "sku": f"SKU-{product_id}",
            "name": name or f"Product {product_id}",
            "price": price,
            "active": active,
            "category": "tools",
        },
        source="inventory",
        correlation_id=f"product-{product_id}",
    )
    if occurred_at is not None:
        envelope = replace(envelope, occurred_at=occurred_at.isoformat())
    return envelope


def stock_event(
    event_type: str, order_id: uuid.UUID | str, version: int | None = None, **data: Any
) -> Envelope:
    """An event from inventory, in ``version`` (the newest when None) and read as a consumer
    reads it: in the newest version's shape."""
    envelope = Envelope.new(
        event_type,
        {"order_id": str(order_id), **data},
        source="inventory",
        correlation_id=str(order_id),
        version=version,
    )
    return decode(body(envelope))


def outbox(event_type: str | None = None) -> list[Envelope]:
    """The events written to the outbox, oldest first, validated (``decode``) and shown as
    published: in their version and its payload, which a consumer of the newest version
    would read brought up to date."""
    rows = OutboxMessage.objects.order_by("id")
    if event_type:
        rows = rows.filter(routing_key=event_type)
    return [_as_published(row.body) for row in rows]


def _as_published(body: str) -> Envelope:
    raw = json.loads(body)
    return replace(decode(body.encode()), version=raw["version"], data=raw["data"])


def body(envelope: Envelope) -> bytes:
    return envelope.to_json().encode()
