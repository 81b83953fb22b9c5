"""Writes of an e-mail delivery's life: scheduled with its notification, then claimed, sent,
refused or abandoned by the worker (:mod:`notifications.email_worker`).

pending --claim--> sending --accepted--> sent
   ^                  |--refused--> pending (retry later) or failed (after the last attempt)
   |                  |--outcome unknown, or claim expired--> failed (never sent again)
   \\--released (claimed, never tried)
pending --claim, e-mail turned off since--> cancelled
"""

from __future__ import annotations

import functools
import textwrap
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any, TypeVar, cast

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import F, Field, Model
from django.utils import timezone

from messaging import notify
from notifications.models import EmailDelivery, Notification

NOTIFY_CHANNEL = "notifications_email"
MAX_RETRY_DELAY = timedelta(hours=1)
ERROR_LENGTH = 2000
TURNED_OFF = "e-mail notifications turned off before sending"
# Not loaded with a claim: the password hash has no business in the worker (deferred, as with
# ``only()``; a message that ever needs it loads it).
UNCLAIMED_FIELDS = frozenset({"password"})
Status = EmailDelivery.Status
M = TypeVar("M", bound=Model)


def email_delivery_schedule(*, notification: Notification) -> EmailDelivery | None:
    """In the notification's transaction: its e-mail copy, when the user has an address and
    wants e-mail. The worker is woken when, and only if, the transaction commits.

    On PostgreSQL ``notification_create`` writes the copy and sends the wake-up in the very
    statement that creates the notification (same rule: one ``NOTIFY`` per transaction,
    ``messaging.notify``); this is the ORM way, for the other databases.
    """
    user = notification.user
    if not user.email or not user.email_notifications:
        return None
    delivery = EmailDelivery.objects.create(notification=notification, recipient=user.email)
    notify.notify_once(NOTIFY_CHANNEL)
    return delivery


def email_retry_delay(*, attempts: int, base_seconds: float) -> timedelta:
    """Exponential back-off: base, 2 x base, 4 x base after attempt 1, 2, 3; at most an hour."""
    seconds = base_seconds * 2 ** min(max(attempts - 1, 0), 32)  # bounded: no overflow
    return min(timedelta(seconds=seconds), MAX_RETRY_DELAY)


def email_deliveries_claim(*, limit: int) -> list[EmailDelivery]:
    """Take up to ``limit`` due deliveries for this worker: ``sending``, one more attempt; the
    earliest due first, each with its notification and user (what its message needs).

    Rows another worker is claiming are skipped, and a claimed row is no longer ``pending``
    once this commits, so no two workers ever hold the same delivery. A due row whose user
    turned e-mail off since is ``cancelled`` instead, and not returned.
    """
    if connection.vendor == "postgresql":
        return _claim_postgresql(limit=limit)
    return _claim_portable(limit=limit)


def _claim_postgresql(*, limit: int) -> list[EmailDelivery]:
    """One statement, committed on its own: lock the due rows nobody holds, update them, and
    return them with their notification and user."""
    sql, fields = _claim_statement()
    params: dict[str, Any] = {
        "pending": Status.PENDING,
        "sending": Status.SENDING,
        "cancelled": Status.CANCELLED,
        "now": timezone.now(),
        "limit": limit,
        "off": TURNED_OFF,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    user_model = get_user_model()
    claimed: list[EmailDelivery] = []
    for row in rows:
        values = iter(row)
        delivery = _from_row(EmailDelivery, fields[EmailDelivery], values)
        notification = _from_row(Notification, fields[Notification], values)
        notification.user = _from_row(user_model, fields[user_model], values)
        delivery.notification = notification
        if delivery.status == Status.SENDING:  # else cancelled: e-mail turned off
            claimed.append(delivery)
    claimed.sort(key=lambda delivery: (delivery.next_attempt_at, delivery.pk))
    return claimed


@functools.cache
def _claim_statement() -> tuple[str, dict[type[Model], list[Field[Any, Any]]]]:
    """The claim's SQL, and the fields of each model its rows carry, in their order."""
    quote = connection.ops.quote_name
    loaded: dict[type[Model], str] = {EmailDelivery: "d", Notification: "n", get_user_model(): "u"}
    fields = {
        model: [f for f in model._meta.concrete_fields if f.attname not in UNCLAIMED_FIELDS]
        for model in loaded
    }
    returning = ", ".join(
        f"{alias}.{quote(cast(str, field.column))}"
        for model, alias in loaded.items()
        for field in fields[model]
    )
    d, n, u = (quote(model._meta.db_table) for model in loaded)
    sql = f"""
        WITH due AS MATERIALIZED (
            SELECT id FROM {d}
            WHERE status = %(pending)s AND next_attempt_at <= %(now)s
            ORDER BY next_attempt_at, id
            LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED
        )
        UPDATE {d} AS d SET
            status = CASE WHEN u.email_notifications THEN %(sending)s ELSE %(cancelled)s END,
            attempts = d.attempts + CASE WHEN u.email_notifications THEN 1 ELSE 0 END,
            claimed_at = CASE WHEN u.email_notifications THEN %(now)s ELSE d.claimed_at END,
            last_error = CASE WHEN u.email_notifications THEN d.last_error ELSE %(off)s END
        FROM due, {n} AS n, {u} AS u
        WHERE d.id = due.id AND n.id = d.notification_id AND u.id = n.user_id
        RETURNING {returning}
    """  # noqa: S608 -- only the models' table and column names are interpolated
    return textwrap.dedent(sql).strip(), fields


def _from_row(model: type[M], fields: list[Field[Any, Any]], values: Iterator[Any]) -> M:
    """An instance of ``model`` from the next ``len(fields)`` values of a row, as a query
    loading only these fields would give it."""
    return model.from_db(
        connection.alias, [f.attname for f in fields], [next(values) for _ in fields]
    )


@transaction.atomic
def _claim_portable(*, limit: int) -> list[EmailDelivery]:
    """The same with the ORM, for SQLite (which has no ``FOR UPDATE``: its single writer
    serialises the claims instead)."""
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
            status=Status.CANCELLED, last_error=TURNED_OFF
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


# The writes below are each one statement (a transaction by itself, no BEGIN / COMMIT round
# trips) or, for refusals, statements that can be run again: the worker repeats a write that
# a database outage interrupted until it goes through.


def email_deliveries_mark_sent(*, deliveries: Sequence[EmailDelivery]) -> None:
    """The server took them: one statement for the whole batch."""
    # By id alone: the server took it, so it is sent even if its claim expired meanwhile.
    EmailDelivery.objects.filter(pk__in=[d.pk for d in deliveries]).update(
        status=Status.SENT, sent_at=timezone.now(), claimed_at=None, last_error=""
    )


def email_deliveries_mark_refused(
    *,
    deliveries: Sequence[EmailDelivery],
    error: str,
    max_attempts: int,
    retry_base_seconds: float,
) -> list[EmailDelivery]:
    """The server was unreachable or said no, so nothing went out: retry later, or give up
    after the last attempt. One statement per number of attempts made (a batch the server
    could not take usually has one); returns the deliveries given up."""
    by_attempts: dict[int, list[int]] = defaultdict(list)
    for delivery in deliveries:
        by_attempts[delivery.attempts].append(delivery.pk)
    for attempts, ids in by_attempts.items():
        fields: dict[str, object] = {"claimed_at": None, "last_error": error[:ERROR_LENGTH]}
        if attempts >= max_attempts:
            fields["status"] = Status.FAILED
        else:
            fields["status"] = Status.PENDING
            delay = email_retry_delay(attempts=attempts, base_seconds=retry_base_seconds)
            fields["next_attempt_at"] = timezone.now() + delay
        EmailDelivery.objects.filter(pk__in=ids, status=Status.SENDING).update(**fields)
    return [d for d in deliveries if d.attempts >= max_attempts]


def email_delivery_mark_unknown(*, delivery: EmailDelivery, error: str) -> None:
    """The connection broke while the message was on its way: it may have been delivered."""
    EmailDelivery.objects.filter(pk=delivery.pk, status=Status.SENDING).update(
        status=Status.FAILED,
        claimed_at=None,
        last_error=f"outcome unknown, not retried so that it is never sent twice: {error}"[
            :ERROR_LENGTH
        ],
    )


def email_deliveries_release(*, deliveries: Sequence[EmailDelivery]) -> None:
    """Give back claimed deliveries that were never tried (the worker is stopping)."""
    EmailDelivery.objects.filter(pk__in=[d.pk for d in deliveries], status=Status.SENDING).update(
        status=Status.PENDING, attempts=F("attempts") - 1, claimed_at=None
    )


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
