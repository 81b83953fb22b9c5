"""What a notification's e-mail says: its title as the subject, its body with a greeting."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage

from notifications.models import EmailDelivery

FOOTER = (
    "You get this e-mail because e-mail notifications are on for your account. To turn them "
    'off: PATCH /api/users/me/ with {"email_notifications": false}.'
)


def email_message_build(*, delivery: EmailDelivery, connection: Any = None) -> EmailMessage:
    """The e-mail for ``delivery``; the subject names the order, the body tells the outcome.

    The Message-ID is the same on every attempt, so a receiving system that sees the message
    twice can tell it is one message.
    """
    notification = delivery.notification
    user = notification.user
    body = "\n\n".join(
        [
            f"Hello {user.first_name or user.username},",
            f"{notification.title}.",
            notification.body,
            f"-- \n{FOOTER}",
        ]
    )
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].rstrip(">").strip() or "localhost"
    return EmailMessage(
        subject=notification.title,
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[delivery.recipient],
        headers={"Message-ID": f"<notification-{notification.pk}@{domain}>"},
        connection=connection,
    )
