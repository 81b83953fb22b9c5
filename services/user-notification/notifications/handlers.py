"""What each consumed event tells whom. ``HANDLERS`` is what the worker's consumer runs.

Each handler runs inside the consumer's transaction, with the inbox row that makes a redelivery
a no-op. An event naming a user this service does not know can never succeed: it is rejected
to the dead-letter queue, where an operator sees it, instead of being dropped.
"""

import logging
from collections.abc import Callable, Sequence

from accounts.models import User
from accounts.selectors import user_get, user_list_staff
from messaging.consumer import BatchHandler, Handler, Rejections, RejectMessage
from messaging.envelope import Envelope
from notifications.models import Notification
from notifications.services import NewNotification, notification_create, notifications_create

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


def _order_notice(
    envelope: Envelope, *, kind: str, outcome: str, detail: str, shipment_id: int = 0
) -> NewNotification:
    """What an event about an order tells its owner; about one of its returns when the event
    names a return (once per return and kind, then)."""
    data = envelope.data
    order_id, return_id = data["order_id"], data.get("return_id")
    about = f"order {order_id}" if return_id is None else f"return {return_id} of order {order_id}"
    return NewNotification(
        user_id=data["user_id"],
        kind=kind,
        title=f"{about[0].upper()}{about[1:]} {outcome}",
        body=f"Your {about} {detail}",
        order_id=order_id,
        causation=envelope,
        shipment_id=shipment_id,
        return_id=return_id,
    )


def _because(reason: str) -> str:
    return f": {reason}" if reason.strip() else "."


def _received(envelope: Envelope) -> NewNotification:
    """Only for an ``order.created`` queued while an earlier release's binding routed it here:
    the owner is told of the outcome instead (docs/events.md)."""
    detail = "was received; its stock is being reserved."
    return _order_notice(envelope, kind=Kind.ORDER_RECEIVED, outcome="received", detail=detail)


def _confirmed(envelope: Envelope) -> NewNotification:
    detail = f"is confirmed. Total: {envelope.data['total']}."
    return _order_notice(envelope, kind=Kind.ORDER_CONFIRMED, outcome="confirmed", detail=detail)


def _rejected(envelope: Envelope) -> NewNotification:
    detail = f"could not be accepted{_because(envelope.data['reason'])}"
    return _order_notice(envelope, kind=Kind.ORDER_REJECTED, outcome="rejected", detail=detail)


def _cancelled(envelope: Envelope) -> NewNotification:
    detail = f"was cancelled{_because(envelope.data['reason'])}"
    return _order_notice(envelope, kind=Kind.ORDER_CANCELLED, outcome="cancelled", detail=detail)


def _shipped(envelope: Envelope) -> NewNotification:
    """One notification per shipment: "part of your order has shipped" while units are left,
    "your order has shipped" for the last one (and for a version 1 event, which told of the
    whole order at once: no shipment id)."""
    data = envelope.data
    shipment_id = data["shipment_id"] or 0
    if data["complete"]:
        detail = "has been shipped."
        kind, outcome = Kind.ORDER_SHIPPED, "shipped"
    else:
        units = sum(line["quantity"] for line in data["lines"])
        detail = f"has shipped in part: {units} unit(s) are on their way, the rest will follow."
        kind, outcome = Kind.ORDER_PARTIALLY_SHIPPED, "partly shipped"
    return _order_notice(
        envelope, kind=kind, outcome=outcome, detail=detail, shipment_id=shipment_id
    )


def _backordered(envelope: Envelope) -> NewNotification:
    """The order waits for stock; its confirmation (order.confirmed) is told as any other."""
    units = sum(line["quantity"] for line in envelope.data["lines"])
    detail = (
        f"is waiting for stock: {units} unit(s) are not in stock yet. It will be confirmed "
        "as soon as they arrive."
    )
    return _order_notice(
        envelope, kind=Kind.ORDER_BACKORDERED, outcome="waiting for stock", detail=detail
    )


def _return_requested(envelope: Envelope) -> NewNotification:
    units = sum(line["quantity"] for line in envelope.data["lines"])
    detail = f"is registered: {units} unit(s) to send back."
    return _order_notice(envelope, kind=Kind.RETURN_REQUESTED, outcome="requested", detail=detail)


def _return_received(envelope: Envelope) -> NewNotification:
    data = envelope.data
    units = sum(line["restocked"] + line["damaged"] for line in data["lines"])
    detail = f"has arrived: {units} unit(s) received. Refund: {data['refund_amount']}."
    return _order_notice(envelope, kind=Kind.RETURN_RECEIVED, outcome="received", detail=detail)


def _return_refunded(envelope: Envelope) -> NewNotification:
    amount = envelope.data["amount"]
    return _order_notice(
        envelope,
        kind=Kind.RETURN_REFUNDED,
        outcome=f"refunded: {amount}",
        detail=f"is refunded: {amount} will be paid back to you.",
    )


# What each event about an order (or one of its returns) tells its owner.
ORDER_NOTICES: dict[str, Callable[[Envelope], NewNotification]] = {
    "order.created": _received,
    "order.confirmed": _confirmed,
    "order.rejected": _rejected,
    "order.cancelled": _cancelled,
    "order.shipped": _shipped,
    "order.backordered": _backordered,
    "return.requested": _return_requested,
    "return.received": _return_received,
    "return.refunded": _return_refunded,
}


def on_order_event_batch(envelopes: Sequence[Envelope]) -> Rejections:
    """Events about orders and their returns, of any of these types: a statement for all
    their owners' notifications and e-mail copies (one per unique key: about a return or
    about the order). The owner is not read first: the insert reads them."""
    notices = [ORDER_NOTICES[envelope.type](envelope) for envelope in envelopes]
    created = notifications_create(notifications=notices)
    return {
        notice.causation.id: _unknown_user(notice.causation, notice.user_id)
        for notice, outcome in zip(notices, created, strict=True)
        if not outcome.user_known
    }


def tell_order_owner(envelope: Envelope) -> None:
    """One event of ``ORDER_NOTICES`` alone (a batch of one, or one retried on its own)."""
    rejected = on_order_event_batch([envelope])
    if rejected:
        raise rejected[envelope.id]


def on_order_created(envelope: Envelope) -> None:
    tell_order_owner(envelope)


def on_order_confirmed(envelope: Envelope) -> None:
    tell_order_owner(envelope)


def on_order_rejected(envelope: Envelope) -> None:
    tell_order_owner(envelope)


def on_order_cancelled(envelope: Envelope) -> None:
    tell_order_owner(envelope)


def on_order_shipped(envelope: Envelope) -> None:
    tell_order_owner(envelope)


def on_stock_low(envelope: Envelope) -> None:
    data = envelope.data
    staff = list(user_list_staff())
    if not staff:
        logger.warning(
            "stock.low %s for %s: no active staff account to tell", envelope.id, data["sku"]
        )
    title = f"Low stock: {data['name']} ({data['sku']})"
    body = (
        f"Only {data['available']} of {data['name']} ({data['sku']}) available, "
        f"under the threshold of {data['threshold']}."
    )
    notifications_create(
        notifications=[
            NewNotification(
                user_id=user.pk,
                kind=Kind.STOCK_LOW,
                title=title,
                body=body,
                product_id=data["product_id"],
                causation=envelope,
            )
            for user in staff
        ]
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
    # Not bound any more (``topology.RETIRED``): for what an earlier binding already queued.
    "order.created": BatchHandler(one=on_order_created, many=on_order_event_batch),
    "order.confirmed": BatchHandler(one=on_order_confirmed, many=on_order_event_batch),
    "order.rejected": BatchHandler(one=on_order_rejected, many=on_order_event_batch),
    "order.cancelled": BatchHandler(one=on_order_cancelled, many=on_order_event_batch),
    "order.shipped": BatchHandler(one=on_order_shipped, many=on_order_event_batch),
    "order.backordered": BatchHandler(one=tell_order_owner, many=on_order_event_batch),
    "return.requested": BatchHandler(one=tell_order_owner, many=on_order_event_batch),
    "return.received": BatchHandler(one=tell_order_owner, many=on_order_event_batch),
    "return.refunded": BatchHandler(one=tell_order_owner, many=on_order_event_batch),
    "stock.low": on_stock_low,
    "user.registered": on_user_registered,
}
