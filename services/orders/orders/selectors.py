"""Reads of orders. A customer only ever sees their own; staff see everyone's."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from django.db.models import Prefetch, QuerySet, prefetch_related_objects

from identity.authentication import TokenUser
from orders.models import Order, OrderLine, OrderStatusChange


def _history() -> Prefetch:
    return Prefetch("status_changes", queryset=OrderStatusChange.objects.order_by("at", "id"))


def orders_visible_to(viewer: TokenUser) -> QuerySet[Order]:
    orders = Order.objects.all()
    return orders if viewer.is_staff else orders.filter(user_id=viewer.id)


def order_list(
    *, viewer: TokenUser, status: str | None = None, user_id: int | None = None
) -> QuerySet[Order]:
    """Newest first, with lines. ``user_id`` narrows staff's view; a customer's is always own."""
    orders = orders_visible_to(viewer)
    if viewer.is_staff and user_id is not None:
        orders = orders.filter(user_id=user_id)
    if status:
        orders = orders.filter(status=status)
    return orders.prefetch_related("lines").order_by("-created_at", "-id")


def order_get(*, viewer: TokenUser, order_id: uuid.UUID) -> Order | None:
    """The order, or None when it is missing or not the viewer's."""
    return orders_visible_to(viewer).filter(pk=order_id).first()


def order_by_idempotency_key(*, user_id: int, idempotency_key: str) -> Order | None:
    return Order.objects.filter(user_id=user_id, idempotency_key=idempotency_key).first()


def order_with_details(order: Order) -> Order:
    """Load the lines and history of an order already in hand (two queries).

    What the order already carries (see :func:`order_details_in_hand`) is not read again.
    """
    prefetch_related_objects([order], "lines", _history())
    return order


def order_details_in_hand(
    order: Order, *, lines: Sequence[OrderLine], history: Sequence[OrderStatusChange]
) -> Order:
    """Give an order the lines and history rows just written with it, without a query.

    They land where :func:`order_with_details` puts what it reads (``order.lines.all()`` and
    ``order.status_changes.all()`` answer from them), so a new order is shown from the rows in
    memory instead of being read back. ``lines`` in the order they were inserted, ``history``
    oldest first, as the reads would give them.
    """
    # The prefetch cache, as Django's prefetch_related_objects fills it.
    cache = order.__dict__.setdefault("_prefetched_objects_cache", {})
    for name, rows in (("lines", lines), ("status_changes", history)):
        queryset = getattr(order, name).all()  # lazy: no query
        queryset._result_cache = list(rows)
        queryset._prefetch_done = True
        cache[name] = queryset
    return order
