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
    BACKORDERED = "BACKORDERED"  # waits for stock inventory does not have yet, holding the rest
    CONFIRMED = "CONFIRMED"
    PARTIALLY_SHIPPED = "PARTIALLY_SHIPPED"  # some units shipped, others still to ship
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"
    SHIPPED = "SHIPPED"


STATUS_LENGTH = 20

# The only moves an order can make; anything else is refused (API) or ignored (late events).
TRANSITIONS: dict[str, frozenset[str]] = {
    OrderStatus.PENDING: frozenset(
        {
            OrderStatus.BACKORDERED,
            OrderStatus.CONFIRMED,
            OrderStatus.REJECTED,
            OrderStatus.CANCELLED,
        }
    ),
    # The missing units arrived and were allocated (stock.reserved), or the customer, or the
    # backorder deadline, gave up on them.
    OrderStatus.BACKORDERED: frozenset({OrderStatus.CONFIRMED, OrderStatus.CANCELLED}),
    OrderStatus.CONFIRMED: frozenset(
        {OrderStatus.CANCELLED, OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED}
    ),
    # The last shipment, or a cancellation of what is left (the shipped units stay shipped).
    OrderStatus.PARTIALLY_SHIPPED: frozenset({OrderStatus.SHIPPED}),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.SHIPPED: frozenset(),
}


class Order(models.Model):
    lines: RelatedManager[OrderLine]
    status_changes: RelatedManager[OrderStatusChange]
    allocations: RelatedManager[OrderAllocation]
    shipments: RelatedManager[Shipment]
    returns: RelatedManager[Return]

    id: models.UUIDField[uuid.UUID, uuid.UUID] = models.UUIDField(
        primary_key=True, default=uuid.uuid4, editable=False
    )
    # The token's subject; users live in the user-notification service, not here.
    user_id: models.BigIntegerField[int, int] = models.BigIntegerField()
    status: models.CharField[str, str] = models.CharField(
        max_length=STATUS_LENGTH, choices=OrderStatus.choices, default=OrderStatus.PENDING
    )
    total: models.DecimalField[Decimal, Decimal] = models.DecimalField(
        max_digits=12, decimal_places=2
    )
    rejection_reason: models.TextField[str, str] = models.TextField(blank=True, default="")
    # The lines inventory could not reserve, as stock.rejected reported them.
    rejected_lines: models.JSONField[Any, Any] = models.JSONField(blank=True, default=list)
    cancellation_reason: models.TextField[str, str] = models.TextField(blank=True, default="")
    # The refunds of its received returns, summed (placing an order does not name it).
    refunded_total: models.DecimalField[Decimal, Decimal] = models.DecimalField(
        max_digits=12, decimal_places=2, default=Decimal("0.00"), db_default=Decimal("0.00")
    )
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
            models.CheckConstraint(
                condition=Q(refunded_total__gte=0, refunded_total__lte=F("total")),
                name="order_refunded_within_total",
            ),
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
            # The backorder deadline's scan: only the orders waiting, oldest first.
            models.Index(
                fields=["created_at"],
                name="order_backordered_age",
                condition=Q(status=OrderStatus.BACKORDERED),
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
    quantity: models.PositiveIntegerField[int, int] = models.PositiveIntegerField()  # ordered
    line_total: models.DecimalField[Decimal, Decimal] = models.DecimalField(
        max_digits=12, decimal_places=2
    )
    # Units that left in a shipment, and units that never will (the order was cancelled, or
    # rejected, before they shipped). A new line has none of either (the database's default:
    # placing an order does not name them).
    shipped_quantity: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(
        default=0, db_default=0
    )
    cancelled_quantity: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(
        default=0, db_default=0
    )
    # Shipped units that came back in a received return (restocked or written off).
    returned_quantity: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(
        default=0, db_default=0
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order", "product_id"], name="order_line_per_product"),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="order_line_quantity_gte_1"),
            models.CheckConstraint(
                condition=Q(quantity__gte=F("shipped_quantity") + F("cancelled_quantity")),
                name="order_line_shipped_and_cancelled_within_ordered",
            ),
            models.CheckConstraint(
                condition=Q(returned_quantity__lte=F("shipped_quantity")),
                name="order_line_returned_within_shipped",
            ),
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
        max_length=STATUS_LENGTH, choices=OrderStatus.choices, blank=True, default=""
    )
    to_status: models.CharField[str, str] = models.CharField(
        max_length=STATUS_LENGTH, choices=OrderStatus.choices
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


class OrderAllocation(models.Model):
    """Units of one product that inventory holds for the order in one warehouse (known from
    ``stock.reserved`` v2; an order reserved by an older inventory has none: not known), and
    how many of them have shipped."""

    order: models.ForeignKey[Order, Order] = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="allocations"
    )
    order_id: uuid.UUID  # the column behind ``order``, set by Django
    product_id: models.BigIntegerField[int, int] = models.BigIntegerField()
    warehouse: models.CharField[str, str] = models.CharField(max_length=32)  # inventory's code
    quantity: models.PositiveIntegerField[int, int] = models.PositiveIntegerField()
    shipped_quantity: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["order", "product_id", "warehouse"], name="order_allocation_once"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="order_allocation_quantity_gte_1"
            ),
            models.CheckConstraint(
                condition=Q(shipped_quantity__lte=F("quantity")),
                name="order_allocation_shipped_within_allocated",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x product {self.product_id} in {self.warehouse}"


class Shipment(models.Model):
    """Units of an order that left one warehouse together (``warehouse`` None: where they
    were held is not known, the order was reserved by an older inventory)."""

    lines: RelatedManager[ShipmentLine]

    order: models.ForeignKey[Order, Order] = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="shipments"
    )
    order_id: uuid.UUID  # the column behind ``order``, set by Django
    # NULL, not "": not known, as the events say it (null), and no warehouse's code.
    warehouse: models.CharField[str | None, str | None] = models.CharField(  # noqa: DJ001
        max_length=32, null=True, blank=True
    )
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now_add=True)
    # The staff member who shipped it.
    actor_user_id: models.BigIntegerField[int | None, int | None] = models.BigIntegerField(
        null=True, blank=True
    )

    class Meta:
        indexes = [models.Index(fields=["order", "id"], name="shipment_of_order")]

    def __str__(self) -> str:
        return f"shipment {self.pk} of {self.order_id} from {self.warehouse or '-'}"


class ShipmentLine(models.Model):
    shipment: models.ForeignKey[Shipment, Shipment] = models.ForeignKey(
        Shipment, on_delete=models.CASCADE, related_name="lines"
    )
    shipment_id: int  # the column behind ``shipment``, set by Django
    product_id: models.BigIntegerField[int, int] = models.BigIntegerField()
    quantity: models.PositiveIntegerField[int, int] = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["shipment", "product_id"], name="shipment_line_once"),
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="shipment_line_quantity_gte_1"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x product {self.product_id}"


class ReturnStatus(models.TextChoices):
    REQUESTED = "REQUESTED"  # the customer asked; the units are on their way back
    RECEIVED = "RECEIVED"  # staff received them and the refund was recorded


class Return(models.Model):
    """Shipped units of an order that its customer sends back, and, once staff received them
    into a warehouse, the refund they are worth (recorded and announced, not paid here)."""

    lines: RelatedManager[ReturnLine]

    order: models.ForeignKey[Order, Order] = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="returns"
    )
    order_id: uuid.UUID  # the column behind ``order``, set by Django
    user_id: models.BigIntegerField[int, int] = models.BigIntegerField()  # the order's owner
    status: models.CharField[str, str] = models.CharField(
        max_length=STATUS_LENGTH, choices=ReturnStatus.choices, default=ReturnStatus.REQUESTED
    )
    reason: models.TextField[str, str] = models.TextField(blank=True, default="")
    # Inventory's code of the warehouse the units were received into; NULL until received.
    warehouse: models.CharField[str | None, str | None] = models.CharField(  # noqa: DJ001
        max_length=32, null=True, blank=True
    )
    refund_amount: models.DecimalField[Decimal | None, Decimal | None] = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True
    )
    requested_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now_add=True)
    received_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        null=True, blank=True
    )
    requested_by: models.BigIntegerField[int | None, int | None] = models.BigIntegerField(
        null=True, blank=True
    )
    received_by: models.BigIntegerField[int | None, int | None] = models.BigIntegerField(
        null=True, blank=True
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=ReturnStatus.values), name="return_status_known"
            ),
            # Received: where, when and for how much, all known; requested: none of them.
            models.CheckConstraint(
                condition=(
                    Q(
                        status=ReturnStatus.REQUESTED,
                        warehouse__isnull=True,
                        refund_amount__isnull=True,
                        received_at__isnull=True,
                    )
                    | Q(
                        status=ReturnStatus.RECEIVED,
                        warehouse__isnull=False,
                        refund_amount__gte=0,
                        received_at__isnull=False,
                    )
                ),
                name="return_received_is_complete",
            ),
        ]
        # Staff's lists, newest first: every return, and the ones still to receive; an order's.
        indexes = [
            models.Index(fields=["-requested_at", "-id"], name="return_newest"),
            models.Index(fields=["status", "-requested_at", "-id"], name="return_status_newest"),
            models.Index(fields=["order", "id"], name="return_of_order"),
        ]

    def __str__(self) -> str:
        return f"return {self.pk} of {self.order_id} ({self.status})"


class ReturnLine(models.Model):
    """Units of one product of a return, priced as the order's line was (the refund's basis),
    and, once received, how many went back on hand and how many were written off."""

    return_request: models.ForeignKey[Return, Return] = models.ForeignKey(
        Return, on_delete=models.CASCADE, related_name="lines", db_column="return_id"
    )
    return_request_id: int  # the column behind ``return_request``, set by Django
    product_id: models.BigIntegerField[int, int] = models.BigIntegerField()
    sku: models.CharField[str, str] = models.CharField(max_length=64)
    name: models.CharField[str, str] = models.CharField(max_length=200)
    unit_price: models.DecimalField[Decimal, Decimal] = models.DecimalField(
        max_digits=12, decimal_places=2
    )
    quantity: models.PositiveIntegerField[int, int] = models.PositiveIntegerField()  # requested
    restocked: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(default=0)
    damaged: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["return_request", "product_id"], name="return_line_per_product"
            ),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="return_line_quantity_gte_1"),
            models.CheckConstraint(
                condition=Q(quantity__gte=F("restocked") + F("damaged")),
                name="return_line_received_within_requested",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x product {self.product_id}"
