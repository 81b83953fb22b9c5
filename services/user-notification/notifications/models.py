from django.conf import settings
from django.db import models
from django.db.models import Q


class Notification(models.Model):
    """What a user is told in the app about one event (their order's fate, low stock, welcome).

    One event gives at most one notification per user: the consumer's inbox already makes
    redelivery harmless; the constraints guard it in the database too, and also against the
    same order event published twice under two message ids.
    """

    class Kind(models.TextChoices):
        WELCOME = "welcome", "Welcome"
        ORDER_CONFIRMED = "order_confirmed", "Order confirmed"
        ORDER_REJECTED = "order_rejected", "Order rejected"
        ORDER_CANCELLED = "order_cancelled", "Order cancelled"
        ORDER_SHIPPED = "order_shipped", "Order shipped"
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
            # An order is confirmed, rejected, cancelled or shipped at most once.
            models.UniqueConstraint(
                fields=["user", "order_id", "kind"],
                condition=Q(order_id__isnull=False),
                name="notification_once_per_order_event",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "-created_at", "-id"], name="notification_user_newest"),
            models.Index(
                fields=["user"], condition=Q(read_at__isnull=True), name="notification_unread"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for user {self.user_id}: {self.title}"
