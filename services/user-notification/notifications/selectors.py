import uuid
from datetime import datetime
from typing import NamedTuple

from django.db.models import Min, QuerySet

from notifications.models import EmailDelivery, Notification


def notification_list(*, user_id: int, unread: bool | None = None) -> QuerySet[Notification]:
    """A user's notifications, newest first; only unread (True) or only read (False) ones."""
    notifications = Notification.objects.filter(user_id=user_id)
    if unread is not None:
        notifications = notifications.filter(read_at__isnull=unread)
    return notifications.order_by("-created_at", "-id")


class NotificationRow(NamedTuple):
    """What a list shows of a notification, in the API's order."""

    id: int
    kind: str
    title: str
    body: str
    order_id: uuid.UUID | None
    product_id: int | None
    created_at: datetime
    read_at: datetime | None


def notification_page(notifications: QuerySet[Notification]) -> list[NotificationRow]:
    """A page of ``notification_list`` (ordered and sliced) as tuples: model instances cost a
    list most of its CPU."""
    return [
        NotificationRow._make(row) for row in notifications.values_list(*NotificationRow._fields)
    ]


def notification_unread_count(*, user_id: int) -> int:
    return Notification.objects.filter(user_id=user_id, read_at__isnull=True).count()


def notification_get(*, user_id: int, notification_id: int) -> Notification | None:
    """The notification if it is this user's; someone else's is as absent as a missing one."""
    return Notification.objects.filter(pk=notification_id, user_id=user_id).first()


def email_delivery_next_due() -> datetime | None:
    """When the earliest pending e-mail delivery is due (perhaps already), None if none waits."""
    due: datetime | None = EmailDelivery.objects.filter(
        status=EmailDelivery.Status.PENDING
    ).aggregate(due=Min("next_attempt_at"))["due"]
    return due
