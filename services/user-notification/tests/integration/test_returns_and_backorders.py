"""order.backordered, return.requested, return.received and return.refunded each tell the
order's owner once: per order for the backorder, per return for the others, whatever message
id the fact arrives under."""

import uuid
from typing import Any

import pytest
from django.db import connection

from messaging.consumer import Item, MessageProcessor
from notifications.email_messages import email_message_build
from notifications.handlers import HANDLERS
from notifications.models import EmailDelivery, Notification

pytestmark = pytest.mark.django_db

ORDER_ID = str(uuid.uuid4())


def event(event_type: str, user_id: int, return_id: int = 7) -> dict[str, Any]:
    """A payload of ``event_type`` about ``ORDER_ID`` (and its return ``return_id``)."""
    about = {"order_id": ORDER_ID, "user_id": user_id}
    if event_type == "order.backordered":
        lines = [{"product_id": 1, "quantity": 2}, {"product_id": 2, "quantity": 1}]
        return {**about, "lines": lines}
    about["return_id"] = return_id
    if event_type == "return.requested":
        lines = [{"product_id": 1, "quantity": 2}, {"product_id": 3, "quantity": 1}]
        return {**about, "lines": lines, "reason": "too small"}
    if event_type == "return.received":
        lines = [
            {"product_id": 1, "restocked": 1, "damaged": 1},
            {"product_id": 3, "restocked": 1, "damaged": 0},
        ]
        return {**about, "warehouse": "wh-east", "lines": lines, "refund_amount": "31.50"}
    return {**about, "amount": "31.50"}


# What each event tells the owner: (kind, title, body).
TOLD = {
    "order.backordered": (
        "order_backordered",
        f"Order {ORDER_ID} waiting for stock",
        f"Your order {ORDER_ID} is waiting for stock: 3 unit(s) are not in stock yet. It will "
        "be confirmed as soon as they arrive.",
    ),
    "return.requested": (
        "return_requested",
        f"Return 7 of order {ORDER_ID} requested",
        f"Your return 7 of order {ORDER_ID} is registered: 3 unit(s) to send back.",
    ),
    "return.received": (
        "return_received",
        f"Return 7 of order {ORDER_ID} received",
        f"Your return 7 of order {ORDER_ID} has arrived: 3 unit(s) received. Refund: 31.50.",
    ),
    "return.refunded": (
        "return_refunded",
        f"Return 7 of order {ORDER_ID} refunded: 31.50",
        f"Your return 7 of order {ORDER_ID} is refunded: 31.50 will be paid back to you.",
    ),
}


def told(user_id: int) -> list[tuple[Any, ...]]:
    return list(
        Notification.objects.filter(user_id=user_id)
        .order_by("id")
        .values_list("kind", "title", "body", "order_id", "return_id")
    )


@pytest.fixture(params=["sql", "orm"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The PostgreSQL statement, and the ORM way of other databases (SQLite's)."""
    if request.param == "orm":
        monkeypatch.setattr(connection, "vendor", "sqlite")
    return str(request.param)


@pytest.mark.parametrize("event_type", list(TOLD))
def test_each_event_tells_the_owner_once_with_its_text(
    make_user, make_message, deliver, event_type, way
):
    owner, other = make_user("alice"), make_user("bob")

    assert deliver(make_message(event_type, event(event_type, owner.pk))).action == "ack"

    return_id = None if event_type == "order.backordered" else 7
    assert told(owner.pk) == [(*TOLD[event_type], uuid.UUID(ORDER_ID), return_id)]
    assert told(other.pk) == []
    delivery = EmailDelivery.objects.get(notification__user=owner)
    mail = email_message_build(delivery=delivery)
    assert mail.subject == TOLD[event_type][1]
    assert TOLD[event_type][2] in mail.body and mail.to == ["alice@example.com"]


@pytest.mark.parametrize("event_type", list(TOLD))
def test_the_same_fact_under_another_message_id_is_told_once(
    make_user, make_message, deliver, event_type, way
):
    owner = make_user("alice")
    data = event(event_type, owner.pk)

    for _ in range(3):  # the relay and the writer both sent it, then a replay from the DLQ
        assert deliver(make_message(event_type, data)).action == "ack"

    assert [kind for kind, *_ in told(owner.pk)] == [TOLD[event_type][0]]
    assert EmailDelivery.objects.count() == 1


def test_each_return_of_an_order_is_told_apart(make_user, make_message, deliver, way):
    owner = make_user("alice")

    for return_id in (7, 8):
        for event_type in ("return.requested", "return.received", "return.refunded"):
            data = event(event_type, owner.pk, return_id)
            assert deliver(make_message(event_type, data)).action == "ack"
    shipped = {"order_id": ORDER_ID, "user_id": owner.pk}
    assert deliver(make_message("order.shipped", shipped, version=1)).action == "ack"

    assert [(kind, return_id) for kind, _, _, _, return_id in told(owner.pk)] == [
        ("return_requested", 7),
        ("return_received", 7),
        ("return_refunded", 7),
        ("return_requested", 8),
        ("return_received", 8),
        ("return_refunded", 8),
        ("order_shipped", None),
    ]


def test_one_batch_of_every_kind_twice_tells_each_once(make_user, make_message):
    owner = make_user("alice")
    bodies = [
        make_message(event_type, event(event_type, owner.pk))
        for event_type in (*TOLD, *TOLD, "order.confirmed")
        if event_type != "order.confirmed"
    ]
    confirmed = {"order_id": ORDER_ID, "user_id": owner.pk, "total": "31.50"}
    bodies.append(make_message("order.confirmed", confirmed))
    processor = MessageProcessor("user-notification", HANDLERS, max_attempts=3)

    outcomes = processor.process_batch([Item(body) for body in bodies])

    assert [o.action for o in outcomes] == ["ack"] * 9
    assert sorted(kind for kind, *_ in told(owner.pk)) == [
        "order_backordered",
        "order_confirmed",
        "return_received",
        "return_refunded",
        "return_requested",
    ]


def test_an_unknown_owner_is_dead_lettered(make_message, deliver, db):
    outcome = deliver(make_message("return.refunded", event("return.refunded", 999_999)))

    assert outcome.action == "dead"
    assert Notification.objects.count() == 0


def test_the_notification_list_shows_them(make_user, make_message, deliver, client_for):
    owner = make_user("alice")
    for event_type in TOLD:
        assert deliver(make_message(event_type, event(event_type, owner.pk))).action == "ack"

    results = client_for(owner).get("/api/notifications/").json()["results"]

    assert [(n["kind"], n["title"], n["body"], n["order_id"]) for n in results] == [
        (*TOLD[event_type], ORDER_ID) for event_type in reversed(TOLD)
    ]
    assert client_for(make_user("bob")).get("/api/notifications/").json()["results"] == []
