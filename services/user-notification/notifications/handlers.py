"""What each consumed event tells whom. ``HANDLERS`` is what ``run_consumer`` runs.

Each handler runs inside the consumer's transaction, with the inbox row that makes a redelivery
a no-op. An event naming a user this service does not know can never succeed: it is rejected
to the dead-letter queue, where an operator sees it, instead of being dropped.
"""

import logging

from accounts.models import User
from accounts.selectors import user_get, user_list_staff
from messaging.consumer import Handler, RejectMessage
from messaging.envelope import Envelope
from notifications.models import Notification
from notifications.services import notification_create

logger = logging.getLogger(__name__)
Kind = Notification.Kind


def _user_named_by(envelope: Envelope) -> User:
    user_id = envelope.data["user_id"]
    user = user_get(user_id=user_id)
    if user is None:
        raise _unknown_user(envelope, user_id)
    return user


def _unknown_user(envelope: Envelope, user_id: object) -> RejectMessage:
    return RejectMessage(f"{envelope.type} {envelope.id} names unknown user {user_id}")


def _tell_order_owner(envelope: Envelope, *, kind: str, outcome: str, detail: str) -> None:
    """One statement: the owner is not read first, the notification's insert reads them."""
    data = envelope.data
    order_id, user_id = data["order_id"], data["user_id"]
    try:
        notification_create(
            user_id=user_id,
            kind=kind,
            title=f"Order {order_id} {outcome}",
            body=f"Your order {order_id} {detail}",
            order_id=order_id,
            causation=envelope,
        )
    except User.DoesNotExist:
        raise _unknown_user(envelope, user_id) from None


def _because(reason: str) -> str:
    return f": {reason}" if reason.strip() else "."


def on_order_created(envelope: Envelope) -> None:
    _tell_order_owner(
        envelope,
        kind=Kind.ORDER_RECEIVED,
        outcome="received",
        detail="was received; its stock is being reserved.",
    )


def on_order_confirmed(envelope: Envelope) -> None:
    total = envelope.data["total"]
    _tell_order_owner(
        envelope,
        kind=Kind.ORDER_CONFIRMED,
        outcome="confirmed",
        detail=f"is confirmed. Total: {total}.",
    )


def on_order_rejected(envelope: Envelope) -> None:
    reason = envelope.data["reason"]
    _tell_order_owner(
        envelope,
        kind=Kind.ORDER_REJECTED,
        outcome="rejected",
        detail=f"could not be accepted{_because(reason)}",
    )


def on_order_cancelled(envelope: Envelope) -> None:
    reason = envelope.data["reason"]
    _tell_order_owner(
        envelope,
        kind=Kind.ORDER_CANCELLED,
        outcome="cancelled",
        detail=f"was cancelled{_because(reason)}",
    )


def on_order_shipped(envelope: Envelope) -> None:
    _tell_order_owner(
        envelope, kind=Kind.ORDER_SHIPPED, outcome="shipped", detail="has been shipped."
    )


def on_stock_low(envelope: Envelope) -> None:
    data = envelope.data
    staff = list(user_list_staff())
    if not staff:
        logger.warning(
            "stock.low %s for %s: no active staff account to tell", envelope.id, data["sku"]
        )
    for user in staff:
        notification_create(
            user_id=user.pk,
            kind=Kind.STOCK_LOW,
            title=f"Low stock: {data['name']} ({data['sku']})",
            body=(
                f"Only {data['available']} of {data['name']} ({data['sku']}) available, "
                f"under the threshold of {data['threshold']}."
            ),
            product_id=data["product_id"],
            causation=envelope,
        )


def on_user_registered(envelope: Envelope) -> None:
    user = _user_named_by(envelope)  # its name is in the welcome
    notification_create(
        user_id=user.pk,
        kind=Kind.WELCOME,
        title=f"Welcome, {user.username}!",
        body="Your account is ready. What happens to your orders will be told here.",
        causation=envelope,
    )


HANDLERS: dict[str, Handler] = {
    "order.created": on_order_created,
    "order.confirmed": on_order_confirmed,
    "order.rejected": on_order_rejected,
    "order.cancelled": on_order_cancelled,
    "order.shipped": on_order_shipped,
    "stock.low": on_stock_low,
    "user.registered": on_user_registered,
}
