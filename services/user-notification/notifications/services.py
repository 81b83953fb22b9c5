import logging
import uuid

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from notifications.email_deliveries import email_delivery_schedule
from notifications.models import Notification

logger = logging.getLogger(__name__)


@transaction.atomic
def notification_create(
    *,
    user: User,
    kind: str,
    title: str,
    body: str,
    source_message_id: str | uuid.UUID,
    order_id: str | uuid.UUID | None = None,
    product_id: int | None = None,
) -> Notification:
    """The user's notification about one message, created unless it already exists.

    A notification about an order is unique per (user, order, kind), whatever message told it.
    A new notification gets its e-mail copy scheduled in the same transaction.
    """
    fields = {"kind": kind, "title": title, "body": body, "product_id": product_id}
    if order_id is not None:
        notification, created = Notification.objects.get_or_create(
            user=user,
            order_id=order_id,
            kind=kind,
            defaults={**fields, "source_message_id": source_message_id},
        )
    else:
        notification, created = Notification.objects.get_or_create(
            user=user,
            source_message_id=source_message_id,
            defaults={**fields, "order_id": None},
        )
    if created:
        email_delivery_schedule(notification=notification)
        logger.info(
            "notification %s created for user %s: %s%s",
            notification.pk,
            user.pk,
            kind,
            f" about order {order_id}" if order_id is not None else "",
        )
    return notification


@transaction.atomic
def notification_mark_read(*, notification: Notification) -> Notification:
    """Mark as read; the first reading time is kept when it is marked again."""
    Notification.objects.filter(pk=notification.pk, read_at__isnull=True).update(
        read_at=timezone.now()
    )
    notification.refresh_from_db(fields=["read_at"])
    return notification


@transaction.atomic
def notification_mark_all_read(*, user_id: int) -> int:
    """Mark every unread notification of the user as read; how many were."""
    return Notification.objects.filter(user_id=user_id, read_at__isnull=True).update(
        read_at=timezone.now()
    )
