"""Valid payloads and envelopes for the tests."""

from __future__ import annotations

import json
import uuid
from typing import Any

from messaging.envelope import Envelope


def order_created(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "order_id": str(uuid.uuid4()),
        "user_id": 7,
        "lines": [{"product_id": 1, "quantity": 2}, {"product_id": 3, "quantity": 1}],
    }
    data.update(overrides)
    return data


def stock_reserved(order_id: str) -> dict[str, Any]:
    return {"order_id": order_id, "lines": [{"product_id": 1, "quantity": 2}]}


def order_shipped(order_id: str, user_id: int) -> dict[str, Any]:
    """The whole order shipped at once, as version 1 said it, in the newest version."""
    return {
        "order_id": order_id,
        "user_id": user_id,
        "shipment_id": None,
        "warehouse": None,
        "lines": [],
        "complete": True,
    }


def reserve(envelope: Envelope) -> None:
    """What inventory does with an order.created: publishes stock.reserved, caused by it."""
    from messaging.outbox import publish_event  # needs the apps loaded

    publish_event(
        "stock.reserved",
        stock_reserved(envelope.data["order_id"]),
        correlation_id=envelope.correlation_id,
        causation=envelope,
    )


def envelope(event_type: str = "order.created", data: dict[str, Any] | None = None) -> Envelope:
    return Envelope.new(
        event_type,
        order_created() if data is None else data,
        source="orders",
        correlation_id=str(uuid.uuid4()),
    )


def raw_envelope(*, remove: tuple[str, ...] = (), **overrides: Any) -> dict[str, Any]:
    """A valid envelope as a dict, with fields replaced or removed."""
    raw: dict[str, Any] = json.loads(envelope().to_json())
    raw.update(overrides)
    for key in remove:
        del raw[key]
    return raw


def body(raw: dict[str, Any]) -> bytes:
    return json.dumps(raw).encode()
