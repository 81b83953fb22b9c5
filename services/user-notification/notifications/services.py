"""Writes of notifications: created from the consumed events, marked read by their user."""

import functools
import json
import logging
import textwrap
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from messaging import notify
from messaging.consumer import handling
from messaging.envelope import Envelope
from notifications.email_deliveries import (
    NOTIFY_CHANNEL,
    email_delivery_schedule,
)
from notifications.models import EmailDelivery, Notification
from service_runtime import statements

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewNotification:
    """What one message (``causation``) tells one user."""

    user_id: int
    kind: str
    title: str
    body: str
    causation: Envelope
    order_id: str | uuid.UUID | None = None
    product_id: int | None = None
    shipment_id: int = 0  # the shipment told of; 0: none
    return_id: int | None = None  # the return told of (with its order); None: none

    @property
    def key(self) -> str:
        """The unique key it falls under: ``return``, ``order`` or ``message``."""
        if self.return_id is not None:
            return "return"
        return "order" if self.order_id is not None else "message"

    @property
    def stored_shipment_id(self) -> int:
        """What its ``shipment_id`` column holds: minus the return's id for a notification
        about a return (see ``Notification.shipment_id``)."""
        return -self.return_id if self.return_id is not None else self.shipment_id


class Created(NamedTuple):
    """What became of a :class:`NewNotification`."""

    notification_id: int | None  # None: it existed already, or its user is unknown
    user_known: bool


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
    unknown user. See :func:`notifications_create`."""
    notification = NewNotification(
        user_id=user_id,
        kind=kind,
        title=title,
        body=body,
        causation=causation,
        order_id=order_id,
        product_id=product_id,
    )
    [created] = notifications_create(notifications=[notification])
    if not created.user_known:
        raise User.DoesNotExist(f"no user {user_id}")
    return created.notification_id


def notifications_create(*, notifications: Sequence[NewNotification]) -> list[Created]:
    """Each notification created unless it already exists; what became of each, in order.

    A notification about a return is unique per (user, order, kind, return), one about any
    other fact of an order per (user, order, kind, shipment), whatever message told it; any
    other one per (user, message). A new notification gets its e-mail copy scheduled in the
    same transaction, when the user has an address and wants e-mail, and the e-mail worker
    is woken at commit
    (:func:`notifications.email_deliveries.email_delivery_schedule`). It only writes these
    rows, so a transaction may create any number of notifications (the consumer applies a
    batch of messages in one).

    On PostgreSQL, one statement for the notifications about orders, one for those about
    their returns and one for the others, whatever their number: the users read, the
    notifications inserted, their e-mail copies.
    """
    if connection.vendor == "postgresql":
        created = _create_postgresql(notifications)
    else:
        created = [_create_one_portable(notification) for notification in notifications]
    for notification, (notification_id, _) in zip(notifications, created, strict=True):
        if notification_id is not None:
            # One line per notification: grepping an order id shows its path through this
            # service.
            with handling(notification.causation):
                logger.info(
                    "notification %s created for user %s: %s%s",
                    notification_id,
                    notification.user_id,
                    notification.kind,
                    f" about order {notification.order_id}"
                    if notification.order_id is not None
                    else "",
                )
    return created


def _create_postgresql(notifications: Sequence[NewNotification]) -> list[Created]:
    """A statement per unique key (about an order or not), each of them together with the
    users read, the e-mail copies and, unless this transaction has already sent it, the
    worker's wake-up."""
    created: dict[int, Created] = {}
    for key in _UNIQUE_KEYS:
        group = [(position, n) for position, n in enumerate(notifications) if n.key == key]
        if group:
            created.update(_create_group(group, key=key))
    return [created[position] for position in range(len(notifications))]


# Each key's unique index as ``ON CONFLICT`` names it (see the model's constraints).
_UNIQUE_KEYS = {
    # notification_once_per_order_event, a partial unique index
    "order": "(user_id, order_id, kind, shipment_id) WHERE order_id IS NOT NULL",
    # notification_once_per_return_event, a partial unique index (its rows are under the one
    # above too, told apart there by their shipment_id: see Notification.shipment_id)
    "return": "(user_id, order_id, kind, return_id) WHERE return_id IS NOT NULL",
    # notification_once_per_message
    "message": "(user_id, source_message_id)",
}


def _create_group(group: Sequence[tuple[int, NewNotification]], *, key: str) -> dict[int, Created]:
    wake = not notify.notified_in_this_transaction(NOTIFY_CHANNEL)
    now = timezone.now()
    params: dict[str, Any] = {
        # The users as an array, their rows found by primary key; every notification as one
        # JSON row: psycopg dumps a list parameter element by element in Python, which cost
        # more than the statement's own work (reports/bench-changes.md).
        "users": [n.user_id for _, n in group],
        "notices": json.dumps(
            [
                [
                    n.user_id,
                    n.kind,
                    n.title,
                    n.body,
                    None if n.order_id is None else str(n.order_id),
                    n.product_id,
                    n.stored_shipment_id,
                    n.return_id,
                    n.causation.id,
                ]
                for _, n in group
            ]
        ),
        "now": now,
        "pending": EmailDelivery.Status.PENDING.value,
    }
    rows = statements.execute(_create_statement(key=key, wake=wake), params, prepared=True)
    if wake and any(row[3] is not None for row in rows):
        notify.mark_notified(NOTIFY_CHANNEL)
    return {
        group[row[0] - 1][0]: Created(notification_id=row[2], user_known=row[1]) for row in rows
    }


@functools.cache
def _create_statement(*, key: str, wake: bool) -> str:
    """The SQL of :func:`_create_group`. A row per notification given (``position``, from 1):
    whether its user exists, the new notification's id and its delivery's (each NULL when none
    was created).

    ``ON CONFLICT`` names the model's unique key the notification falls under, as
    ``get_or_create`` looked it up: a conflict on it is the notification existing already (or
    given twice: the first one is created). A new notification is found again by its user and
    message (``notification_once_per_message``). ``pg_notify`` runs only when a delivery was
    inserted; like ``NOTIFY``, it is delivered at commit, and dropped on rollback.
    """
    quote = connection.ops.quote_name
    users, notifications, deliveries = (
        quote(model._meta.db_table) for model in (User, Notification, EmailDelivery)
    )
    unique_key = _UNIQUE_KEYS[key]
    woken = f", CASE WHEN d.id IS NOT NULL THEN pg_notify('{NOTIFY_CHANNEL}', '') END"
    sql = f"""
        WITH i AS (
            SELECT (x ->> 0)::bigint AS user_id, x ->> 1 AS kind, x ->> 2 AS title,
                x ->> 3 AS body, (x ->> 4)::uuid AS order_id, (x ->> 5)::bigint AS product_id,
                (x ->> 6)::bigint AS shipment_id, (x ->> 7)::bigint AS return_id,
                (x ->> 8)::uuid AS source_message_id, position
            FROM jsonb_array_elements(%(notices)s::jsonb) WITH ORDINALITY AS e (x, position)
        ), u AS (
            SELECT id, email, email_notifications FROM {users}
            WHERE id = ANY(%(users)s::bigint[])
        ), n AS (
            INSERT INTO {notifications} (
                user_id, kind, title, body, order_id, product_id, shipment_id, return_id,
                source_message_id, created_at
            )
            SELECT u.id, i.kind, i.title, i.body, i.order_id, i.product_id, i.shipment_id,
                i.return_id, i.source_message_id, %(now)s::timestamptz
            FROM i JOIN u ON u.id = i.user_id
            ORDER BY i.position
            ON CONFLICT {unique_key} DO NOTHING
            RETURNING id, user_id, source_message_id
        ), d AS (
            INSERT INTO {deliveries}
                (notification_id, recipient, status, attempts, next_attempt_at, last_error,
                 created_at)
            SELECT n.id, u.email, %(pending)s, 0, %(now)s::timestamptz, '', %(now)s::timestamptz
            FROM n JOIN u ON u.id = n.user_id
            WHERE u.email <> '' AND u.email_notifications
            ORDER BY n.id
            RETURNING id, notification_id
        )
        SELECT i.position, u.id IS NOT NULL, n.id, d.id{woken if wake else ""}
        FROM i
        LEFT JOIN u ON u.id = i.user_id
        LEFT JOIN n ON n.user_id = i.user_id AND n.source_message_id = i.source_message_id
        LEFT JOIN d ON d.notification_id = n.id
        ORDER BY i.position
    """  # noqa: S608 -- only the models' table names and the channel name are interpolated
    return textwrap.dedent(sql).strip()


def _create_one_portable(notification: NewNotification) -> Created:
    try:
        notification_id = _create_portable(
            user_id=notification.user_id,
            kind=notification.kind,
            title=notification.title,
            body=notification.body,
            source_message_id=notification.causation.id,
            order_id=notification.order_id,
            product_id=notification.product_id,
            shipment_id=notification.stored_shipment_id,
            return_id=notification.return_id,
        )
    except User.DoesNotExist:
        return Created(notification_id=None, user_known=False)
    return Created(notification_id=notification_id, user_known=True)


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
    shipment_id: int = 0,
    return_id: int | None = None,
) -> int | None:
    """The same with the ORM, for SQLite (no data-modifying ``WITH``)."""
    user = User.objects.only("email", "email_notifications").get(pk=user_id)
    fields = {"kind": kind, "title": title, "body": body, "product_id": product_id}
    # The lookup of the unique key it falls under (see notifications_create), and the rest.
    key: dict[str, Any]
    rest: dict[str, Any]
    if return_id is not None:
        key = {"order_id": order_id, "kind": kind, "return_id": return_id}
        rest = {"shipment_id": shipment_id, "source_message_id": source_message_id}
    elif order_id is not None:
        key = {"order_id": order_id, "kind": kind, "shipment_id": shipment_id}
        rest = {"source_message_id": source_message_id}
    else:
        key = {"source_message_id": source_message_id}
        rest = {"order_id": None}
    notification, created = Notification.objects.get_or_create(
        user=user, **key, defaults={**fields, **rest}
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
