"""Writes of notifications: created from the consumed events, marked read by their user."""

import functools
import logging
import textwrap
import uuid
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from messaging import notify
from messaging.envelope import Envelope
from notifications.email_deliveries import (
    NOTIFY_CHANNEL,
    email_delivery_schedule,
)
from notifications.models import EmailDelivery, Notification

logger = logging.getLogger(__name__)


def notification_create(
    *,
    user_id: int,
    kind: str,
    title: str,
    body: str,
    causation: Envelope,
    order_id: str | uuid.UUID | None = None,
    product_id: int | None = None,
) -> int | None:
    """The user's notification about one message (``causation``), created unless it already
    exists: the new notification's id, or None when it existed. ``User.DoesNotExist`` for an
    unknown user.

    A notification about an order is unique per (user, order, kind), whatever message told it;
    any other one per (user, message). A new notification gets its e-mail copy scheduled in the
    same transaction, when the user has an address and wants e-mail, and the e-mail worker is
    woken at commit (:func:`notifications.email_deliveries.email_delivery_schedule`). It only
    writes these rows, so a transaction may create any number of notifications (the consumer
    applies a batch of messages in one).
    """
    create = _create_postgresql if connection.vendor == "postgresql" else _create_portable
    notification_id = create(
        user_id=user_id,
        kind=kind,
        title=title,
        body=body,
        source_message_id=causation.id,
        order_id=order_id,
        product_id=product_id,
    )
    if notification_id is not None:
        # One line per notification: grepping an order id shows its path through this service.
        logger.info(
            "notification %s created for user %s: %s%s",
            notification_id,
            user_id,
            kind,
            f" about order {order_id}" if order_id is not None else "",
        )
    return notification_id


def _create_postgresql(
    *,
    user_id: int,
    kind: str,
    title: str,
    body: str,
    source_message_id: str | uuid.UUID,
    order_id: str | uuid.UUID | None,
    product_id: int | None,
) -> int | None:
    """One statement: the user read, the notification inserted unless it exists, its e-mail
    copy, and, unless this transaction has already sent it, the worker's wake-up."""
    wake = not notify.notified_in_this_transaction(NOTIFY_CHANNEL)
    now = timezone.now()
    params: dict[str, Any] = {
        "user_id": user_id,
        "kind": kind,
        "title": title,
        "body": body,
        "order_id": order_id,
        "product_id": product_id,
        "source_message_id": source_message_id,
        "now": now,
        "pending": EmailDelivery.Status.PENDING.value,
    }
    with connection.cursor() as cursor:
        cursor.execute(_create_statement(about_order=order_id is not None, wake=wake), params)
        row = cursor.fetchone()
    if row is None:
        raise User.DoesNotExist(f"no user {user_id}")
    notification_id, delivery_id = row[0], row[1]
    if wake and delivery_id is not None:
        notify.mark_notified(NOTIFY_CHANNEL)
    return notification_id


@functools.cache
def _create_statement(*, about_order: bool, wake: bool) -> str:
    """The SQL of :func:`_create_postgresql`. Its row: the new notification's id and its
    delivery's (each NULL when none was created); no row when the user does not exist.

    ``ON CONFLICT`` names the model's unique key the notification falls under, as
    ``get_or_create`` looked it up: a conflict on it is the notification existing already.
    ``pg_notify`` runs only when a delivery was inserted; like ``NOTIFY``, it is delivered at
    commit, and dropped on rollback.
    """
    quote = connection.ops.quote_name
    users, notifications, deliveries = (
        quote(model._meta.db_table) for model in (User, Notification, EmailDelivery)
    )
    if about_order:  # notification_once_per_order_event, a partial unique index
        unique_key = "(user_id, order_id, kind) WHERE order_id IS NOT NULL"
    else:  # notification_once_per_message
        unique_key = "(user_id, source_message_id)"
    woken = f", CASE WHEN d.id IS NOT NULL THEN pg_notify('{NOTIFY_CHANNEL}', '') END"
    sql = f"""
        WITH u AS (
            SELECT id, email, email_notifications FROM {users} WHERE id = %(user_id)s
        ), n AS (
            INSERT INTO {notifications}
                (user_id, kind, title, body, order_id, product_id, source_message_id, created_at)
            SELECT u.id, %(kind)s, %(title)s, %(body)s, %(order_id)s::uuid,
                %(product_id)s::bigint, %(source_message_id)s::uuid, %(now)s::timestamptz
            FROM u
            ON CONFLICT {unique_key} DO NOTHING
            RETURNING id
        ), d AS (
            INSERT INTO {deliveries}
                (notification_id, recipient, status, attempts, next_attempt_at, last_error,
                 created_at)
            SELECT n.id, u.email, %(pending)s, 0, %(now)s::timestamptz, '', %(now)s::timestamptz
            FROM n, u
            WHERE u.email <> '' AND u.email_notifications
            RETURNING id
        )
        SELECT n.id, d.id{woken if wake else ""} FROM u LEFT JOIN n ON TRUE LEFT JOIN d ON TRUE
    """  # noqa: S608 -- only the models' table names and the channel name are interpolated
    return textwrap.dedent(sql).strip()


@transaction.atomic
def _create_portable(
    *,
    user_id: int,
    kind: str,
    title: str,
    body: str,
    source_message_id: str | uuid.UUID,
    order_id: str | uuid.UUID | None,
    product_id: int | None,
) -> int | None:
    """The same with the ORM, for SQLite (no data-modifying ``WITH``)."""
    user = User.objects.only("email", "email_notifications").get(pk=user_id)
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
    if not created:
        return None
    email_delivery_schedule(notification=notification)
    return int(notification.pk)


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
