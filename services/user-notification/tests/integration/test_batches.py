"""Events about orders in batches: their notifications and e-mail copies in one statement,
whatever their number and types, and each message still its own outcome."""

import json
import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging.consumer import Item, MessageProcessor
from messaging.envelope import decode
from messaging.models import InboxMessage
from notifications.handlers import HANDLERS
from notifications.models import EmailDelivery, Notification
from service_runtime import query_plans
from service_runtime.query_plans import statements as recorded_statements

pytestmark = pytest.mark.django_db


def about_order(event_type: str, user_id: int, order_id: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"order_id": order_id or str(uuid.uuid4()), "user_id": user_id}
    if event_type == "order.created":
        data["lines"] = [{"product_id": 1, "quantity": 2}]
    elif event_type == "order.confirmed":
        data["total"] = "42.50"
    elif event_type in ("order.rejected", "order.cancelled"):
        data["reason"] = "only 1 available"
    return data


TYPES = ["order.created", "order.confirmed", "order.rejected", "order.cancelled", "order.shipped"]


def process_batch(bodies: list[bytes]) -> list[str]:
    processor = MessageProcessor("user-notification", HANDLERS, max_attempts=3)
    return [outcome.action for outcome in processor.process_batch([Item(b) for b in bodies])]


def test_twenty_events_of_every_type_cost_one_statement(make_user, make_message):
    users = [make_user("alice"), make_user("bob"), make_user("quiet", email_notifications=False)]

    def statements(size: int) -> list[str]:
        bodies = [
            make_message(TYPES[n % len(TYPES)], about_order(TYPES[n % len(TYPES)], users[n % 3].pk))
            for n in range(size)
        ]
        with CaptureQueriesContext(connection) as queries:
            assert process_batch(bodies) == ["ack"] * size
        return [q["sql"].split()[0] for q in queries]

    # the consumer's savepoint and inbox rows, then one statement for everything
    assert statements(20) == statements(2) == ["SAVEPOINT", "INSERT", "WITH", "RELEASE"]
    assert Notification.objects.count() == 22
    assert EmailDelivery.objects.count() == 14 + 2  # not for the user who turned e-mail off


def test_the_notifications_go_as_json_rows_not_as_lists(make_user, make_message):
    """psycopg dumps a list parameter element by element in Python: the notifications go as
    one JSON text, and only their users, which the planner reads by, as an array."""
    user = make_user("alice")
    bodies = [make_message(t, about_order(t, user.pk)) for t in TYPES[:3]]
    with recorded_statements() as run:
        assert process_batch(bodies) == ["ack"] * 3
    writes = [params for sql, params in run if sql.startswith("WITH")]
    assert len(writes) == 1
    (params,) = writes
    lists = [name for name, value in params.items() if isinstance(value, list | tuple)]
    assert lists == ["users"]
    rows = json.loads(params["notices"])
    assert [row[1] for row in rows] == ["order_received", "order_confirmed", "order_rejected"]
    assert Notification.objects.filter(user=user).count() == 3


def test_the_notifications_are_written_prepared_on_a_generic_plan(make_user, make_message):
    """Planned on every call the statement cost PostgreSQL more than its work: it is prepared
    once per connection and runs on one plan, made for no values in particular."""
    user = make_user("alice")

    before = query_plans.plans_of("WITH i AS").get("WITH i AS", (0, 0))
    for kinds in (TYPES[:3], TYPES[3:]):
        assert process_batch([make_message(t, about_order(t, user.pk)) for t in kinds]) == [
            "ack"
        ] * len(kinds)
    after = query_plans.plans_of("WITH i AS")["WITH i AS"]
    # (one text for each unique key the notifications fall under)
    assert after == (before[0] + 2, 0)
    assert Notification.objects.filter(user=user).count() == 5


def test_each_notification_is_the_one_its_event_alone_would_create(
    make_user, make_message, deliver
):
    alice, bob = make_user("alice"), make_user("bob")
    events = [(t, about_order(t, user.pk)) for t in TYPES for user in (alice, bob)]
    for event_type, data in events:
        assert deliver(make_message(event_type, data)).action == "ack"
    alone = list(
        Notification.objects.order_by("id").values_list("user_id", "kind", "title", "body")
    )
    Notification.objects.all().delete()

    assert process_batch([make_message(t, d) for t, d in events]) == ["ack"] * len(events)

    together = Notification.objects.order_by("id").values_list("user_id", "kind", "title", "body")
    assert list(together) == alone
    assert [d.notification.user.email for d in EmailDelivery.objects.order_by("id")][-10:] == [
        "alice@example.com",
        "bob@example.com",
    ] * 5


@pytest.fixture(params=["sql", "orm"])
def either_way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The one statement of PostgreSQL, or the ORM way of other databases (SQLite's)."""
    if request.param == "orm":
        monkeypatch.setattr(connection, "vendor", "sqlite")


@pytest.mark.usefixtures("either_way")
def test_an_unknown_user_is_dead_lettered_and_the_others_told(make_user, make_message):
    alice = make_user("alice")
    bodies = [
        make_message("order.created", about_order("order.created", alice.pk)),
        make_message("order.created", about_order("order.created", 987654)),
        make_message("order.confirmed", about_order("order.confirmed", alice.pk)),
    ]

    processor = MessageProcessor("user-notification", HANDLERS, max_attempts=3)
    outcomes = processor.process_batch([Item(b) for b in bodies])

    assert [o.action for o in outcomes] == ["ack", "dead", "ack"]
    assert "names unknown user 987654" in outcomes[1].reason
    assert Notification.objects.filter(user=alice).count() == 2
    unknown = decode(bodies[1]).id
    assert unknown not in {
        str(m) for m in InboxMessage.objects.values_list("message_id", flat=True)
    }


@pytest.mark.usefixtures("either_way")
def test_an_order_event_told_twice_in_a_batch_is_one_notification(make_user, make_message):
    alice = make_user("alice")
    data = about_order("order.confirmed", alice.pk)
    once = make_message("order.confirmed", data)
    again = make_message("order.confirmed", data)  # the same event under a new message id

    assert process_batch([once, again, once]) == ["ack"] * 3

    assert Notification.objects.filter(user=alice, kind="order_confirmed").count() == 1
    assert EmailDelivery.objects.count() == 1
