from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.models import F, Q

if TYPE_CHECKING:
    from django.db.models.fields.related_descriptors import RelatedManager


class OrderStatus(models.TextChoices):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"
    SHIPPED = "SHIPPED"


# The only moves an order can make; anything else is refused (API) or ignored (late events).
TRANSITIONS: dict[str, frozenset[str]] = {
    OrderStatus.PENDING: frozenset(
        {OrderStatus.CONFIRMED, OrderStatus.REJECTED, OrderStatus.CANCELLED}
    ),
    OrderStatus.CONFIRMED: frozenset({OrderStatus.CANCELLED, OrderStatus.SHIPPED}),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.SHIPPED: frozenset(),
}


class Order(models.Model):
    lines: RelatedManager[OrderLine]
    status_changes: RelatedManager[OrderStatusChange]

    id: models.UUIDField[uuid.UUID, uuid.UUID] = models.UUIDField(
        primary_key=True, default=uuid.uuid4, editable=False
    )
    # The token's subject; users live in the user-notification service, not here.
    user_id: models.BigIntegerField[int, int] = models.BigIntegerField()
    status: models.CharField[str, str] = models.CharField(
        max_length=16, choices=OrderStatus.choices, default=OrderStatus.PENDING
    )
    total: models.DecimalField[Decimal, Decimal] = models.DecimalField(
        max_digits=12, decimal_places=2
    )
    rejection_reason: models.TextField[str, str] = models.TextField(blank=True, default="")
    # The lines inventory could not reserve, as stock.rejected reported them.
    rejected_lines: models.JSONField[Any, Any] = models.JSONField(blank=True, default=list)
    cancellation_reason: models.TextField[str, str] = models.TextField(blank=True, default="")
    idempotency_key: models.CharField[str, str] = models.CharField(max_length=255)
    # sha256 of the normalised request, to tell a replay from a reuse of the key.
    request_fingerprint: models.CharField[str, str] = models.CharField(max_length=64)
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now_add=True)
    updated_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now=True)
    deadline: models.DateTimeField[datetime, datetime] = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user_id", "idempotency_key"], name="order_idempotency_key_once"
            ),
            models.CheckConstraint(
                condition=Q(status__in=OrderStatus.values), name="order_status_known"
            ),
            models.CheckConstraint(condition=Q(total__gte=0), name="order_total_gte_0"),
        ]
        # The lists, newest first: everyone's (staff), one customer's, one status's, one
        # customer's in one status.
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="order_newest"),
            models.Index(fields=["user_id", "-created_at", "-id"], name="order_user_newest"),
            models.Index(fields=["status", "-created_at", "-id"], name="order_status_newest"),
            models.Index(
                fields=["user_id", "status", "-created_at", "-id"],
                name="order_user_status_newest",
            ),
            models.Index(
                fields=["deadline"],
                name="order_pending_deadline",
                condition=Q(status=OrderStatus.PENDING),
            ),
        ]

    def __str__(self) -> str:
        return f"order {self.id} ({self.status})"


class OrderLine(models.Model):
    """A product as it was priced when the order was placed (copied from the replica)."""

    order: models.ForeignKey[Order, Order] = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="lines"
    )
    order_id: uuid.UUID  # the column behind ``order``, set by Django
    product_id: models.BigIntegerField[int, int] = models.BigIntegerField()
    sku: models.CharField[str, str] = models.CharField(max_length=64)
    name: models.CharField[str, str] = models.CharField(max_length=200)
    unit_price: models.DecimalField[Decimal, Decimal] = models.DecimalField(
        max_digits=12, decimal_places=2
    )
    quantity: models.PositiveIntegerField[int, int] = models.PositiveIntegerField()
    line_total: models.DecimalField[Decimal, Decimal] = models.DecimalField(
        max_digits=12, decimal_places=2
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order", "product_id"], name="order_line_per_product"),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="order_line_quantity_gte_1"),
            models.CheckConstraint(
                condition=Q(line_total=F("unit_price") * F("quantity")),
                name="order_line_total_is_price_times_quantity",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"


class OrderStatusChange(models.Model):
    """One entry of an order's history: a transition, or a note when ``from == to``."""

    order: models.ForeignKey[Order, Order] = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="status_changes"
    )
    order_id: uuid.UUID  # the column behind ``order``, set by Django
    from_status: models.CharField[str, str] = models.CharField(
        max_length=16, choices=OrderStatus.choices, blank=True, default=""
    )
    to_status: models.CharField[str, str] = models.CharField(
        max_length=16, choices=OrderStatus.choices
    )
    reason: models.TextField[str, str] = models.TextField(blank=True, default="")
    at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now_add=True)
    # The inbound message that caused it; empty for changes made over the API or by the clock.
    caused_by_message_id: models.UUIDField[uuid.UUID | None, uuid.UUID | None] = models.UUIDField(
        null=True, blank=True
    )
    # The caller who asked for it over the API, if any.
    actor_user_id: models.BigIntegerField[int | None, int | None] = models.BigIntegerField(
        null=True, blank=True
    )

    class Meta:
        indexes = [models.Index(fields=["order", "at"], name="order_history")]

    def __str__(self) -> str:
        return f"{self.order_id}: {self.from_status or '-'} -> {self.to_status}"
