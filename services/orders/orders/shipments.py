"""Shipping an order: some of its units from one warehouse (:func:`order_ship_from`), or
everything it has left (:func:`order_ship`).

Each shipment is one transaction under the order's row lock: a ``Shipment`` and its lines, the
units added to the lines' and the allocations' ``shipped_quantity``, the order moved
(CONFIRMED or PARTIALLY_SHIPPED → PARTIALLY_SHIPPED, or SHIPPED once nothing is left), a
history entry naming the shipment, and ``order.shipped`` (version 2: one shipment; written as
version 1, "the order has shipped", only when that says the same). Two requests for the same
units serialise on the lock: the second sees what the first shipped.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence

from django.db import transaction

from errors import ErrorCode
from messaging.config import get_config
from messaging.outbox import publish_event
from messaging.versions import NotExpressible, version_to_publish
from orders.line_rules import units_of_the_order
from orders.models import Order, OrderAllocation, OrderLine, OrderStatus, Shipment, ShipmentLine
from orders.placement import LineRequest, order_log_context
from orders.services import TransitionNotAllowed, _lock, _move, _record
from service_runtime.errors import refused

logger = logging.getLogger(__name__)

SHIPPABLE = (OrderStatus.CONFIRMED, OrderStatus.PARTIALLY_SHIPPED)


class AllocationUnknown(Exception):
    """The order was reserved by an inventory that did not say where its units are held."""


def _shippable(order_status: str) -> None:
    if order_status not in SHIPPABLE:
        raise TransitionNotAllowed(
            f"Only CONFIRMED or PARTIALLY_SHIPPED orders can be shipped; this one is "
            f"{order_status}."
        )


@transaction.atomic
def order_ship_from(
    *,
    order_id: uuid.UUID,
    warehouse: str,
    lines: Sequence[LineRequest] | None = None,
    actor_user_id: int | None = None,
) -> Shipment:
    """Ship ``lines`` (None: every unit allocated in ``warehouse`` and not shipped yet) of the
    order from ``warehouse``: the new shipment.

    Raises ``TransitionNotAllowed`` (the order is not CONFIRMED or PARTIALLY_SHIPPED),
    :class:`AllocationUnknown` (not known where its units are: ship it whole), a refusal
    (``service_runtime.errors.refused``) naming the field for a warehouse with nothing left
    to ship, a product not in the order, a quantity under 1 or beyond what is left there,
    a product named twice, and ``NotExpressible`` when the version of ``order.shipped`` to
    publish cannot say a partial shipment."""
    order = _lock(order_id)
    _shippable(order.status)
    allocations = list(order.allocations.order_by("id"))
    if not allocations:
        raise AllocationUnknown(
            "Where this order's units are held is not known (they were reserved by an older "
            "release of inventory): ship it whole with POST /api/orders/{id}/ship/."
        )
    left = {
        a.product_id: a.quantity - a.shipped_quantity
        for a in allocations
        if a.warehouse == warehouse and a.quantity > a.shipped_quantity
    }
    if not left:
        raise refused(
            f"Nothing of this order is left to ship from warehouse {warehouse!r}.",
            code=ErrorCode.NOTHING_TO_SHIP,
            field="warehouse",
        )
    in_order = set(order.lines.values_list("product_id", flat=True))
    wanted = dict(left) if lines is None else _wanted(lines, left, in_order)
    return _ship(order, warehouse, wanted, allocations, actor_user_id=actor_user_id)


def _wanted(
    lines: Sequence[LineRequest], left: Mapping[int, int], in_order: set[int]
) -> dict[int, int]:
    """The units asked for, by product, each checked against what is left in the warehouse."""
    wanted: dict[int, int] = {}
    for where, line in units_of_the_order(lines, in_order):
        available = left.get(line.product_id, 0)
        if line.quantity > available:
            problem = (
                f"{where}: {line.quantity} units of product {line.product_id} asked for, "
                f"{available} allocated in this warehouse and not shipped yet."
            )
            raise refused(problem, code=ErrorCode.MORE_THAN_ALLOCATED, field="lines")
        wanted[line.product_id] = line.quantity
    return wanted


@transaction.atomic
def order_ship(*, order_id: uuid.UUID, actor_user_id: int | None = None) -> list[Shipment]:
    """Ship everything the order has left: the new shipments.

    Where its units are held is known and ``order.shipped`` version 2 is published: one
    shipment per warehouse with units left, in the order of the allocations. Otherwise one
    shipment of everything left from no named warehouse: version 1 says it ("the order has
    shipped") when nothing of the order shipped before. ``TransitionNotAllowed`` unless the
    order is CONFIRMED or PARTIALLY_SHIPPED; ``NotExpressible`` when version 1 is published
    and part of the order has shipped already."""
    order = _lock(order_id)
    _shippable(order.status)
    allocations = list(order.allocations.order_by("id"))
    shipments: list[Shipment] = []
    if allocations and _order_shipped_version() >= 2:
        by_warehouse: dict[str, dict[int, int]] = {}
        for a in allocations:
            if a.quantity > a.shipped_quantity:
                units = by_warehouse.setdefault(a.warehouse, {})
                units[a.product_id] = a.quantity - a.shipped_quantity
        for warehouse, wanted in by_warehouse.items():
            shipments.append(
                _ship(order, warehouse, wanted, allocations, actor_user_id=actor_user_id)
            )
    if order.status != OrderStatus.SHIPPED:  # anything no allocation covers: all, or the rest
        lines = order.lines.order_by("id")
        wanted = {
            line.product_id: left
            for line in lines
            if (left := line.quantity - line.shipped_quantity - line.cancelled_quantity) > 0
        }
        if wanted:
            shipments.append(_ship(order, None, wanted, allocations, actor_user_id=actor_user_id))
    return shipments


def _order_shipped_version() -> int:
    """The version of ``order.shipped`` this service publishes (``MESSAGING_EVENT_VERSIONS``)."""
    return version_to_publish("order.shipped", get_config().event_versions)


def _ship(
    order: Order,
    warehouse: str | None,
    wanted: Mapping[int, int],
    allocations: Sequence[OrderAllocation],
    *,
    actor_user_id: int | None,
) -> Shipment:
    """Write one shipment of ``wanted`` (units by product) of the locked ``order`` from
    ``warehouse`` (None: not named, every allocation's units count as shipped), move the
    order and announce it."""
    lines = {line.product_id: line for line in order.lines.order_by("id")}
    shipped_before = any(line.shipped_quantity for line in lines.values())
    if not wanted or any(units < 1 for units in wanted.values()):
        raise ValueError(f"a shipment of {dict(wanted)} ships nothing")
    for product_id, units in wanted.items():
        if product_id not in lines:
            raise ValueError(f"product {product_id} is not in order {order.id}")
        line = lines[product_id]
        line.shipped_quantity += units
        if line.shipped_quantity + line.cancelled_quantity > line.quantity:
            raise ValueError(f"product {product_id}: more than ordered would ship")
    complete = all(
        line.shipped_quantity + line.cancelled_quantity == line.quantity for line in lines.values()
    )
    if _order_shipped_version() < 2 and (shipped_before or not complete):
        raise NotExpressible(
            "This shipment cannot be announced in order.shipped version 1, which says only "
            '"the whole order has shipped": every service must run the new release and '
            "MESSAGING_EVENT_VERSIONS be set (to latest, or order.shipped=2)."
        )

    shipment = Shipment.objects.create(
        order=order, warehouse=warehouse, actor_user_id=actor_user_id
    )
    ShipmentLine.objects.bulk_create(
        [
            ShipmentLine(shipment=shipment, product_id=product_id, quantity=units)
            for product_id, units in sorted(wanted.items())
        ]
    )
    OrderLine.objects.bulk_update([lines[p] for p in sorted(wanted)], ["shipped_quantity"])
    _count_allocations_shipped(allocations, warehouse, wanted)

    units = sum(wanted.values())
    counted = f"{units} unit{'' if units == 1 else 's'}"
    note = f"shipment {shipment.pk}{f' from {warehouse}' if warehouse else ''}: {counted}"
    to_status = OrderStatus.SHIPPED if complete else OrderStatus.PARTIALLY_SHIPPED
    if order.status == to_status:  # another part: a note, the status stays
        order.save(update_fields=["updated_at"])
        _record(order, from_status=order.status, reason=note, actor_user_id=actor_user_id)
    else:
        _move(order, to_status, reason=note, actor_user_id=actor_user_id)
    publish_event(
        "order.shipped",
        {
            "order_id": str(order.id),
            "user_id": order.user_id,
            "shipment_id": shipment.pk,
            "warehouse": warehouse,
            "lines": [{"product_id": p, "quantity": q} for p, q in sorted(wanted.items())],
            "complete": complete,
        },
        correlation_id=str(order.id),
    )
    with order_log_context(order.id):
        logger.info("order %s: %s by user %s", order.id, note, actor_user_id)
    return shipment


def _count_allocations_shipped(
    allocations: Sequence[OrderAllocation], warehouse: str | None, wanted: Mapping[int, int]
) -> None:
    """Add the shipped units to the allocations they came from: ``warehouse``'s, or, for a
    shipment from no named warehouse, each product's allocations in turn."""
    left = dict(wanted)
    changed = []
    for allocation in allocations:
        if warehouse is not None and allocation.warehouse != warehouse:
            continue
        units = min(
            left.get(allocation.product_id, 0), allocation.quantity - allocation.shipped_quantity
        )
        if units > 0:
            allocation.shipped_quantity += units
            left[allocation.product_id] -= units
            changed.append(allocation)
    if changed:
        OrderAllocation.objects.bulk_update(changed, ["shipped_quantity"])
