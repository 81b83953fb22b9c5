"""order.shipped tells the customer of each shipment: "part of your order has shipped" while
units are left, "your order has shipped" for the last one; a version 1 event (no shipment)
is the whole order at once, as before. Each shipment is told once, however often it arrives."""

import uuid
from typing import Any

import pytest
from django.db import connection

from messaging.consumer import Item, MessageProcessor
from notifications.handlers import HANDLERS
from notifications.models import Notification

pytestmark = pytest.mark.django_db

ORDER_ID = str(uuid.uuid4())


def shipment(user_id: int, shipment_id: int, *, units: int, complete: bool) -> dict[str, Any]:
    """order.shipped v2: one shipment of ``units`` of product 1 from wh-east."""
    return {
        "order_id": ORDER_ID,
        "user_id": user_id,
        "shipment_id": shipment_id,
        "warehouse": "wh-east",
        "lines": [{"product_id": 1, "quantity": units}],
        "complete": complete,
    }


def told(user_id: int) -> list[tuple[str, int, str, str]]:
    return list(
        Notification.objects.filter(user_id=user_id)
        .order_by("id")
        .values_list("kind", "shipment_id", "title", "body")
    )


def test_a_partial_shipment_then_the_last_one_are_told_apart(make_user, make_message, deliver):
    owner = make_user("alice")

    first = deliver(
        make_message("order.shipped", shipment(owner.pk, 3, units=2, complete=False), version=2)
    )
    last = deliver(
        make_message("order.shipped", shipment(owner.pk, 4, units=1, complete=True), version=2)
    )

    assert (first.action, last.action) == ("ack", "ack")
    assert told(owner.pk) == [
        (
            "order_partially_shipped",
            3,
            f"Order {ORDER_ID} partly shipped",
            f"Your order {ORDER_ID} has shipped in part: 2 unit(s) are on their way, "
            "the rest will follow.",
        ),
        (
            "order_shipped",
            4,
            f"Order {ORDER_ID} shipped",
            f"Your order {ORDER_ID} has been shipped.",
        ),
    ]


def test_each_partial_shipment_gets_its_own_notification(make_user, make_message, deliver):
    owner = make_user("alice")

    for shipment_id in (5, 6, 7):
        data = shipment(owner.pk, shipment_id, units=1, complete=False)
        assert deliver(make_message("order.shipped", data, version=2)).action == "ack"

    assert [(kind, sid) for kind, sid, *_ in told(owner.pk)] == [
        ("order_partially_shipped", 5),
        ("order_partially_shipped", 6),
        ("order_partially_shipped", 7),
    ]


@pytest.mark.parametrize("way", ["sql", "orm"])
def test_a_shipment_published_again_under_another_message_id_is_told_once(
    make_user, make_message, deliver, way, monkeypatch
):
    owner = make_user("alice")
    if way == "orm":  # as on a database other than PostgreSQL (SQLite's)
        monkeypatch.setattr(connection, "vendor", "sqlite")
    data = shipment(owner.pk, 8, units=2, complete=False)

    for _ in range(3):  # the relay and the writer both sent it, then a replay from the DLQ
        assert deliver(make_message("order.shipped", data, version=2)).action == "ack"
    assert (
        deliver(
            make_message("order.shipped", shipment(owner.pk, 9, units=1, complete=True), version=2)
        ).action
        == "ack"
    )

    assert [(kind, sid) for kind, sid, *_ in told(owner.pk)] == [
        ("order_partially_shipped", 8),
        ("order_shipped", 9),
    ]


def test_a_version_one_event_is_the_whole_order_as_before(make_user, make_message, deliver):
    owner = make_user("alice")
    whole = {"order_id": ORDER_ID, "user_id": owner.pk}

    assert deliver(make_message("order.shipped", whole, version=1)).action == "ack"
    assert deliver(make_message("order.shipped", whole, version=1)).action == "ack"

    assert told(owner.pk) == [
        (
            "order_shipped",
            0,
            f"Order {ORDER_ID} shipped",
            f"Your order {ORDER_ID} has been shipped.",
        )
    ]


def test_shipments_in_one_batch_are_each_told(make_user, make_message):
    owner = make_user("alice")
    bodies = [
        make_message("order.shipped", shipment(owner.pk, 10, units=1, complete=False), version=2),
        make_message("order.shipped", shipment(owner.pk, 10, units=1, complete=False), version=2),
        make_message("order.shipped", shipment(owner.pk, 11, units=1, complete=True), version=2),
    ]
    processor = MessageProcessor("user-notification", HANDLERS, max_attempts=3)

    outcomes = processor.process_batch([Item(body) for body in bodies])

    assert [o.action for o in outcomes] == ["ack"] * 3
    assert [(kind, sid) for kind, sid, *_ in told(owner.pk)] == [
        ("order_partially_shipped", 10),
        ("order_shipped", 11),
    ]
