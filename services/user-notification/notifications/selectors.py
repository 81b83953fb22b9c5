from datetime import datetime

from django.db.models import Min, QuerySet

from notifications.models import EmailDelivery, Notification


def notification_list(*, user_id: int, unread: bool | None = None) -> QuerySet[Notification]:
    """A user's notifications, newest first; only unread (True) or only read (False) ones."""
    notifications = Notification.objects.filter(user_id=user_id)
    if unread is not None:
        notifications = notifications.filter(read_at__isnull=unread)
    return notifications.order_by("-created_at", "-id")


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
