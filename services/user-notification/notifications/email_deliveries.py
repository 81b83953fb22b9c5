"""Writes of an e-mail delivery's life: scheduled with its notification, then claimed, sent,
refused or abandoned by the worker (:mod:`notifications.email_worker`).

pending --claim--> sending --accepted--> sent
   ^                  |--refused--> pending (retry later) or failed (after the last attempt)
   |                  |--outcome unknown, or claim expired--> failed (never sent again)
   \\--released (claimed, never tried)
pending --claim, e-mail turned off since--> cancelled
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from notifications.models import EmailDelivery, Notification

NOTIFY_CHANNEL = "notifications_email"
MAX_RETRY_DELAY = timedelta(hours=1)
ERROR_LENGTH = 2000
Status = EmailDelivery.Status


def email_delivery_schedule(*, notification: Notification) -> EmailDelivery | None:
    """In the notification's transaction: its e-mail copy, when the user has an address and
    wants e-mail. The worker is woken when, and only if, the transaction commits."""
    user = notification.user
    if not user.email or not user.email_notifications:
        return None
    delivery = EmailDelivery.objects.create(notification=notification, recipient=user.email)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"NOTIFY {NOTIFY_CHANNEL}")
    return delivery


def email_retry_delay(*, attempts: int, base_seconds: float) -> timedelta:
    """Exponential back-off: base, 2 x base, 4 x base after attempt 1, 2, 3; at most an hour."""
    seconds = base_seconds * 2 ** min(max(attempts - 1, 0), 32)  # bounded: no overflow
    return min(timedelta(seconds=seconds), MAX_RETRY_DELAY)


@transaction.atomic
def email_deliveries_claim(*, limit: int) -> list[EmailDelivery]:
    """Take up to ``limit`` due deliveries for this worker: ``sending``, one more attempt.

    Rows another worker is claiming are skipped, and a claimed row is no longer ``pending``
    once this commits, so no two workers ever hold the same delivery.
    """
    now = timezone.now()
    due = list(
        EmailDelivery.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("notification__user")
        .filter(status=Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "id")[:limit]
    )
    claimed = [d for d in due if d.notification.user.email_notifications]
    turned_off = [d.pk for d in due if not d.notification.user.email_notifications]
    if turned_off:
        EmailDelivery.objects.filter(pk__in=turned_off).update(
            status=Status.CANCELLED, last_error="e-mail notifications turned off before sending"
        )
    EmailDelivery.objects.filter(pk__in=[d.pk for d in claimed]).update(
        status=Status.SENDING, attempts=F("attempts") + 1, claimed_at=now
    )
    for delivery in claimed:
        delivery.status, delivery.attempts, delivery.claimed_at = (
            Status.SENDING,
            delivery.attempts + 1,
            now,
        )
    return claimed


@transaction.atomic
def email_delivery_mark_sent(*, delivery: EmailDelivery) -> None:
    # By id alone: the server took it, so it is sent even if its claim expired meanwhile.
    EmailDelivery.objects.filter(pk=delivery.pk).update(
        status=Status.SENT, sent_at=timezone.now(), claimed_at=None, last_error=""
    )


@transaction.atomic
def email_delivery_mark_refused(
    *, delivery: EmailDelivery, error: str, max_attempts: int, retry_base_seconds: float
) -> str:
    """The server was unreachable or said no, so nothing went out: retry later, or give up
    after the last attempt. Returns the new status."""
    fields: dict[str, object] = {"claimed_at": None, "last_error": error[:ERROR_LENGTH]}
    if delivery.attempts >= max_attempts:
        status = Status.FAILED
    else:
        status = Status.PENDING
        delay = email_retry_delay(attempts=delivery.attempts, base_seconds=retry_base_seconds)
        fields["next_attempt_at"] = timezone.now() + delay
    EmailDelivery.objects.filter(pk=delivery.pk, status=Status.SENDING).update(
        status=status, **fields
    )
    return status


@transaction.atomic
def email_delivery_mark_unknown(*, delivery: EmailDelivery, error: str) -> None:
    """The connection broke while the message was on its way: it may have been delivered."""
    EmailDelivery.objects.filter(pk=delivery.pk, status=Status.SENDING).update(
        status=Status.FAILED,
        claimed_at=None,
        last_error=f"outcome unknown, not retried so that it is never sent twice: {error}"[
            :ERROR_LENGTH
        ],
    )


@transaction.atomic
def email_deliveries_release(*, deliveries: Sequence[EmailDelivery]) -> None:
    """Give back claimed deliveries that were never tried (the worker is stopping)."""
    EmailDelivery.objects.filter(pk__in=[d.pk for d in deliveries], status=Status.SENDING).update(
        status=Status.PENDING, attempts=F("attempts") - 1, claimed_at=None
    )


@transaction.atomic
def email_deliveries_expire_claims(*, lease_seconds: float) -> int:
    """Fail deliveries whose worker died while sending them; how many there were.

    Whether the server took the message is unknown, so it is not sent again.
    """
    return EmailDelivery.objects.filter(
        status=Status.SENDING,
        claimed_at__lt=timezone.now() - timedelta(seconds=lease_seconds),
    ).update(
        status=Status.FAILED,
        claimed_at=None,
        last_error=(
            "the worker stopped while sending it; not retried so that it is never sent twice"
        ),
    )
