from django.db import models
from django.db.models import Q


class OutboxMessage(models.Model):
    """An event written in the same transaction as the change that caused it.

    The relay publishes unsent rows with publisher confirms and sets ``sent_at`` only after the
    broker has acknowledged the message.
    """

    message_id: models.UUIDField = models.UUIDField(unique=True)
    exchange: models.CharField = models.CharField(max_length=200)
    routing_key: models.CharField = models.CharField(max_length=200)
    body: models.TextField = models.TextField()
    correlation_id: models.CharField = models.CharField(max_length=64)
    created_at: models.DateTimeField = models.DateTimeField(auto_now_add=True)
    sent_at: models.DateTimeField = models.DateTimeField(null=True, blank=True)
    attempts: models.PositiveIntegerField = models.PositiveIntegerField(default=0)
    last_error: models.TextField = models.TextField(blank=True, default="")
    # W3C trace context (traceparent, tracestate) of the span that wrote the row; the relay
    # carries it in the message headers so the trace continues in the consumer.
    headers: models.JSONField = models.JSONField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["id"], name="outbox_unsent", condition=Q(sent_at__isnull=True)),
            # What pruning deletes (messaging.pruning): the sent rows, oldest first.
            models.Index(
                fields=["sent_at"], name="outbox_sent", condition=Q(sent_at__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.routing_key} {self.message_id}"


class InboxMessage(models.Model):
    """A message a consumer has applied; written in the same transaction as its effect.

    Kept ``MESSAGING_RETENTION_DAYS`` after it was processed (``messaging.pruning``): as long as
    the broker could still deliver another copy of the message.
    """

    consumer: models.CharField = models.CharField(max_length=100)
    message_id: models.UUIDField = models.UUIDField()
    message_type: models.CharField = models.CharField(max_length=100)
    processed_at: models.DateTimeField = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["consumer", "message_id"], name="inbox_once"),
        ]
        indexes = [
            # What pruning deletes (messaging.pruning) and the metrics' oldest row: by age.
            models.Index(fields=["processed_at"], name="inbox_processed"),
        ]

    def __str__(self) -> str:
        return f"{self.consumer} {self.message_type} {self.message_id}"
