"""Every change of an event's payload from one version to the next, registered with
:mod:`messaging.versions` (which imports this module, so that :func:`messaging.envelope.decode`
and :func:`messaging.outbox.publish_event` always know them). ``docs/events.md`` lists every
event type and version with its fields.

Each change is added with ``published_by_default=False``: a producer keeps publishing the
previous version until ``MESSAGING_EVENT_VERSIONS`` tells it otherwise.
"""

from __future__ import annotations

from messaging import versions
from messaging.versions import Change, NotExpressible, Payload


def _without(data: Payload, *names: str) -> Payload:
    return {key: value for key, value in data.items() if key not in names}


# stock.reserved v2: where each unit is held, ``allocations`` [{product_id, warehouse,
# quantity}]. A reservation from a release that did not say has ``[]``: not known.


def stock_reserved_up(data: Payload) -> Payload:
    return {**data, "allocations": []}


def stock_reserved_down(data: Payload) -> Payload:
    return _without(data, "allocations")


# order.shipped v2: one shipment of the order, from one warehouse (``shipment_id``,
# ``warehouse``, ``lines``), and whether it was the last (``complete``). Version 1 said "the
# order has shipped": everything that remained, at once.

SHIPMENT_FIELDS = ("shipment_id", "warehouse", "lines", "complete")


def order_shipped_up(data: Payload) -> Payload:
    """The whole order shipped: no shipment known, ``lines`` [] (everything that remained),
    nothing left after it."""
    return {**data, "shipment_id": None, "warehouse": None, "lines": [], "complete": True}


def order_shipped_down(data: Payload) -> Payload:
    """Version 1 ("the order has shipped") says a shipment only when it leaves nothing to ship.

    The producer says in ``complete`` whether units are left; whether others were shipped
    before it is not in the payload, so a producer that has shipped part of an order already
    refuses a version 1 for its last part itself (orders' ``shipments`` module)."""
    if not data["complete"]:
        raise NotExpressible(
            "order.shipped v1 cannot say a partial shipment: it would ship the whole order"
        )
    return _without(data, *SHIPMENT_FIELDS)


CHANGES = (
    Change("stock.reserved", 2, up=stock_reserved_up, down=stock_reserved_down),
    Change("order.shipped", 2, up=order_shipped_up, down=order_shipped_down),
)

for _change in CHANGES:
    versions.register(_change)
