from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Notification(models.Model):
    """What a user is told about one event (their order's fate, low stock, welcome).

    One event gives at most one notification per user: the consumer's inbox already makes
    redelivery harmless; the constraints guard it in the database too, and also against the
    same order event published twice under two message ids.
    """

    class Kind(models.TextChoices):
        WELCOME = "welcome", "Welcome"
        ORDER_RECEIVED = "order_received", "Order received"
        ORDER_CONFIRMED = "order_confirmed", "Order confirmed"
        ORDER_REJECTED = "order_rejected", "Order rejected"
        ORDER_CANCELLED = "order_cancelled", "Order cancelled"
        ORDER_PARTIALLY_SHIPPED = "order_partially_shipped", "Part of an order shipped"
        ORDER_SHIPPED = "order_shipped", "Order shipped"
        ORDER_BACKORDERED = "order_backordered", "Order waiting for stock"
        RETURN_REQUESTED = "return_requested", "Return requested"
        RETURN_RECEIVED = "return_received", "Return received"
        RETURN_REFUNDED = "return_refunded", "Return refunded"
        STOCK_LOW = "stock_low", "Stock low"

    user: models.ForeignKey = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind: models.CharField = models.CharField(max_length=32, choices=Kind.choices)
    title: models.CharField = models.CharField(max_length=300)
    body: models.TextField = models.TextField()
    order_id: models.UUIDField = models.UUIDField(null=True, blank=True)
    product_id: models.PositiveBigIntegerField = models.PositiveBigIntegerField(
        null=True, blank=True
    )
    # The shipment an order.shipped told of (0: none, or not known: the whole order at once).
    # A notification about a return holds minus the return's id here, so that the key of
    # ``notification_once_per_order_event`` (which the previous release's workers name, and
    # which this release keeps) tells the returns of one order apart.
    shipment_id: models.BigIntegerField = models.BigIntegerField(default=0, db_default=0)
    # The return a return.* event told of (its id in orders); None: not about a return.
    return_id: models.BigIntegerField = models.BigIntegerField(null=True, blank=True)
    source_message_id: models.UUIDField = models.UUIDField()
    created_at: models.DateTimeField = models.DateTimeField(auto_now_add=True)
    read_at: models.DateTimeField = models.DateTimeField(null=True, blank=True)
    user_id: int

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["user", "source_message_id"], name="notification_once_per_message"
            ),
            # An order is received, confirmed, rejected, cancelled or shipped at most once;
            # each of its shipments is told once.
            models.UniqueConstraint(
                fields=["user", "order_id", "kind", "shipment_id"],
                condition=Q(order_id__isnull=False),
                name="notification_once_per_order_event",
            ),
            # Each return of an order is requested, received and refunded at most once.
            models.UniqueConstraint(
                fields=["user", "order_id", "kind", "return_id"],
                condition=Q(return_id__isnull=False),
                name="notification_once_per_return_event",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "-created_at", "-id"], name="notification_user_newest"),
            models.Index(
                fields=["user", "-created_at", "-id"],
                condition=Q(read_at__isnull=True),
                name="notification_unread",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for user {self.user_id}: {self.title}"


class EmailDelivery(models.Model):
    """The e-mail copy of one notification, and what became of every attempt to send it.

    Created with its notification, in the consumer's transaction, when the user has an address
    and wants e-mail; sent after commit by the worker's e-mail job
    (:mod:`notifications.email_worker`, which explains the states and why a row caught in
    ``sending`` is never sent again).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"  # waiting for its first try or for its next retry
        SENDING = "sending", "Sending"  # claimed by a worker, in the hands of the mail server
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"  # the last try was refused, or the outcome is unknown
        CANCELLED = "cancelled", "Cancelled"  # the user turned e-mail off before it went

    notification: models.OneToOneField = models.OneToOneField(
        Notification, on_delete=models.CASCADE, related_name="email_delivery"
    )
    recipient: models.EmailField = models.EmailField(max_length=254)
    status: models.CharField = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING
    )
    attempts: models.PositiveIntegerField = models.PositiveIntegerField(default=0)
    next_attempt_at: models.DateTimeField = models.DateTimeField(default=timezone.now)
    claimed_at: models.DateTimeField = models.DateTimeField(null=True, blank=True)
    last_error: models.TextField = models.TextField(blank=True)
    sent_at: models.DateTimeField = models.DateTimeField(null=True, blank=True)
    created_at: models.DateTimeField = models.DateTimeField(auto_now_add=True)
    notification_id: int

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending", "sending", "sent", "failed", "cancelled"]),
                name="email_delivery_status_valid",
            ),
            models.CheckConstraint(
                condition=~Q(status="sent") | Q(sent_at__isnull=False),
                name="email_delivery_sent_has_sent_at",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at", "id"],
                condition=Q(status="pending"),
                name="email_delivery_due",
            ),
            models.Index(
                fields=["claimed_at"], condition=Q(status="sending"), name="email_delivery_sending"
            ),
        ]

    def __str__(self) -> str:
        return f"e-mail of notification {self.notification_id} to {self.recipient}: {self.status}"
