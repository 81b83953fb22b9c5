"""Reads of orders. A customer only ever sees their own; staff see everyone's."""

from __future__ import annotations

import uuid

from django.db.models import Prefetch, QuerySet

from identity.authentication import TokenUser
from orders import persistence
from orders.models import Order, Return, ReturnLine
from orders.persistence import OrderDetail, ShipmentEntry


def orders_visible_to(viewer: TokenUser) -> QuerySet[Order]:
    orders = Order.objects.all()
    return orders if viewer.is_staff else orders.filter(user_id=viewer.id)


def order_list(
    *, viewer: TokenUser, status: str | None = None, user_id: int | None = None
) -> QuerySet[Order]:
    """Newest first. ``user_id`` narrows staff's view; a customer's is always own.

    Each filter and the ordering have an index (see ``Order.Meta.indexes``); a page of it is
    read with its lines by :func:`order_page`."""
    orders = orders_visible_to(viewer)
    if viewer.is_staff and user_id is not None:
        orders = orders.filter(user_id=user_id)
    if status:
        orders = orders.filter(status=status)
    return orders.order_by("-created_at", "-id")


def order_get(*, viewer: TokenUser, order_id: uuid.UUID) -> Order | None:
    """The order, or None when it is missing or not the viewer's."""
    return orders_visible_to(viewer).filter(pk=order_id).first()


def order_by_idempotency_key(*, user_id: int, idempotency_key: str) -> Order | None:
    return Order.objects.filter(user_id=user_id, idempotency_key=idempotency_key).first()


def order_detail(*, viewer: TokenUser, order_id: uuid.UUID) -> OrderDetail | None:
    """The order with its lines and history (one query), or None when it is missing or not
    the viewer's."""
    owner_id = None if viewer.is_staff else viewer.id
    return persistence.order_detail_get(order_id=order_id, owner_id=owner_id)


def order_page(orders: QuerySet[Order]) -> list[OrderDetail]:
    """A page of ``order_list`` (ordered and sliced) with each order's lines, in the order
    they were placed, in one statement; no history."""
    return persistence.order_page(orders)


def order_shipments(order: Order, shipment_id: int | None = None) -> list[ShipmentEntry]:
    """The order's shipments with their lines, oldest first (only ``shipment_id`` if given)."""
    return persistence.shipments_of(order.id, shipment_id)


def returns_visible_to(viewer: TokenUser) -> QuerySet[Return]:
    """Returns with their lines (by id); a customer's are those of their own orders."""
    returns = Return.objects.prefetch_related(
        Prefetch("lines", queryset=ReturnLine.objects.order_by("id"))
    )
    return returns if viewer.is_staff else returns.filter(user_id=viewer.id)


def return_list(*, viewer: TokenUser, status: str | None = None) -> QuerySet[Return]:
    """Newest first (indexes ``return_newest`` and ``return_status_newest``)."""
    returns = returns_visible_to(viewer)
    if status:
        returns = returns.filter(status=status)
    return returns.order_by("-requested_at", "-id")


def order_returns(order: Order) -> list[Return]:
    """The order's returns with their lines, oldest first."""
    return list(
        Return.objects.filter(order=order)
        .prefetch_related(Prefetch("lines", queryset=ReturnLine.objects.order_by("id")))
        .order_by("id")
    )


def return_get(*, viewer: TokenUser, return_id: int) -> Return | None:
    """The return with its lines, or None when it is missing or not of the viewer's orders."""
    return returns_visible_to(viewer).filter(pk=return_id).first()


def return_with_lines(return_id: int) -> Return:
    """The return with its lines (by id) as stored now."""
    return Return.objects.prefetch_related(
        Prefetch("lines", queryset=ReturnLine.objects.order_by("id"))
    ).get(pk=return_id)
