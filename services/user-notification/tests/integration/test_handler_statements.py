"""What handling an order event costs the database: one statement per notification (the user,
the notification, its e-mail copy and the worker's wake-up together), one for a whole batch of
them, and one wake-up per transaction however many notifications it creates. Going back to a
user SELECT, to ``get_or_create`` (a SELECT, then a savepoint around the INSERT) or to a NOTIFY
per notification makes these counts grow."""

import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import psycopg
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from messaging.consumer import Item, MessageProcessor
from messaging.envelope import decode
from notifications import handlers
from notifications.email_deliveries import NOTIFY_CHANNEL
from notifications.handlers import HANDLERS
from notifications.models import EmailDelivery, Notification
from notifications.services import notification_create
from tests.factories import user_registered

pytestmark = pytest.mark.django_db

# One statement: the user read, the notification inserted unless it exists, its e-mail copy
# scheduled, and, first in its transaction, the e-mail worker woken.
STATEMENTS_PER_NOTIFICATION = 1
# Any number of notifications about orders, in one batch: the same one statement.
STATEMENTS_PER_BATCH = 1
# Around the handler, the consumer's own: its transaction (a savepoint inside the test's
# transaction, so SAVEPOINT and RELEASE SAVEPOINT are counted) and its inbox row.
CONSUMER_STATEMENTS = 3


def order_created(user_id: int) -> dict[str, Any]:
    return {
        "order_id": str(uuid.uuid4()),
        "user_id": user_id,
        "lines": [{"product_id": 1, "quantity": 2}],
    }


def order_confirmed(user_id: int) -> dict[str, Any]:
    return {"order_id": str(uuid.uuid4()), "user_id": user_id, "total": "42.50"}


EVENTS = {"order.created": order_created, "order.confirmed": order_confirmed}


def wake_ups(queries: Iterable[dict[str, str]]) -> int:
    """How many of the captured statements wake the e-mail worker."""
    return sum("notify" in query["sql"].lower() for query in queries)


@pytest.mark.parametrize("event_type", EVENTS)
class TestOneEvent:
    def test_its_handler_costs_one_statement(self, event_type, make_user, make_message):
        alice = make_user("alice")
        envelope = decode(make_message(event_type, EVENTS[event_type](alice.pk)))

        with transaction.atomic(), CaptureQueriesContext(connection) as queries:
            HANDLERS[event_type](envelope)

        assert len(queries) == STATEMENTS_PER_NOTIFICATION, [q["sql"] for q in queries]
        assert wake_ups(queries) == 1
        delivery = EmailDelivery.objects.select_related("notification").get()
        assert delivery.notification.user == alice
        assert delivery.recipient == "alice@example.com"

    def test_its_delivery_costs_the_consumers_statements_and_one(
        self, event_type, make_user, make_message, deliver
    ):
        alice = make_user("alice")
        body = make_message(event_type, EVENTS[event_type](alice.pk))

        with CaptureQueriesContext(connection) as queries:
            assert deliver(body).action == "ack"

        expected = CONSUMER_STATEMENTS + STATEMENTS_PER_NOTIFICATION
        assert len(queries) == expected, [q["sql"] for q in queries]
        assert Notification.objects.get().user == alice

    def test_a_repeated_event_costs_the_same_and_creates_nothing(
        self, event_type, make_user, make_message
    ):
        alice = make_user("alice")
        envelope = decode(make_message(event_type, EVENTS[event_type](alice.pk)))
        HANDLERS[event_type](envelope)

        with transaction.atomic(), CaptureQueriesContext(connection) as queries:
            HANDLERS[event_type](envelope)

        assert len(queries) == STATEMENTS_PER_NOTIFICATION, [q["sql"] for q in queries]
        assert (Notification.objects.count(), EmailDelivery.objects.count()) == (1, 1)

    def test_an_unknown_user_costs_the_same(self, event_type, make_message):
        envelope = decode(make_message(event_type, EVENTS[event_type](987654)))

        with CaptureQueriesContext(connection) as queries, pytest.raises(handlers.RejectMessage):
            HANDLERS[event_type](envelope)

        assert len(queries) == STATEMENTS_PER_NOTIFICATION, [q["sql"] for q in queries]
        assert not Notification.objects.exists()


class TestWakeUps:
    def test_a_batch_costs_one_statement_and_wakes_the_e_mail_worker_once(
        self, make_user, make_message
    ):
        alice, bob = make_user("alice"), make_user("bob")
        bodies = [
            make_message("order.created", order_created(alice.pk)),
            make_message("order.confirmed", order_confirmed(bob.pk)),
            make_message("order.confirmed", order_confirmed(alice.pk)),
        ]
        processor = MessageProcessor("user-notification", HANDLERS, max_attempts=3)

        with CaptureQueriesContext(connection) as queries:
            outcomes = processor.process_batch([Item(body) for body in bodies])

        assert [outcome.action for outcome in outcomes] == ["ack"] * 3
        # events about orders, whatever their types, go to one set-based handler
        expected = CONSUMER_STATEMENTS + STATEMENTS_PER_BATCH
        assert len(queries) == expected, [q["sql"] for q in queries]
        assert wake_ups(queries) == 1
        assert EmailDelivery.objects.count() == 3

    def test_no_wake_up_until_an_e_mail_is_scheduled(self, make_user, make_message):
        quiet = make_user("quiet", email_notifications=False)
        alice = make_user("alice")

        with transaction.atomic(), CaptureQueriesContext(connection) as queries:
            handlers.on_order_confirmed(
                decode(make_message("order.confirmed", order_confirmed(quiet.pk)))
            )
            handlers.on_order_confirmed(
                decode(make_message("order.confirmed", order_confirmed(alice.pk)))
            )
            handlers.on_order_created(
                decode(make_message("order.created", order_created(alice.pk)))
            )

        # The first statement would wake it, but scheduled nothing, so it did not: the second
        # one, which scheduled an e-mail, does; the third needs not.
        assert len(queries) == 3 * STATEMENTS_PER_NOTIFICATION
        assert [wake_ups([query]) for query in queries] == [1, 1, 0]
        assert EmailDelivery.objects.count() == 2

    def test_a_wake_up_rolled_back_with_its_savepoint_is_sent_again(self, make_user):
        alice = make_user("alice")

        def welcome() -> None:
            notification_create(
                user_id=alice.pk,
                kind="welcome",
                title="Hi",
                body="Hi",
                causation=user_registered(alice),
            )

        with transaction.atomic(), CaptureQueriesContext(connection) as queries:
            with pytest.raises(RuntimeError), transaction.atomic():
                welcome()
                raise RuntimeError("the handler failed after creating it")
            welcome()
            welcome()

        assert wake_ups(queries) == 2
        assert EmailDelivery.objects.count() == 2


@pytest.fixture
def listener() -> Iterator[psycopg.Connection[Any]]:
    """A session LISTENing where the e-mail worker does."""
    db = connection.settings_dict
    conn = psycopg.connect(
        dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"], autocommit=True
    )
    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
    try:
        yield conn
    finally:
        conn.close()


@pytest.mark.django_db(transaction=True)
class TestWokenOnCommit:
    def test_the_worker_is_woken_when_the_transaction_commits(
        self, make_user, make_message, listener
    ):
        alice = make_user("alice")

        with transaction.atomic():
            handlers.on_order_created(
                decode(make_message("order.created", order_created(alice.pk)))
            )
            handlers.on_order_confirmed(
                decode(make_message("order.confirmed", order_confirmed(alice.pk)))
            )
            assert list(listener.notifies(timeout=0.2)) == []  # not before the commit

        assert [n.channel for n in listener.notifies(timeout=2, stop_after=1)] == [NOTIFY_CHANNEL]

    def test_not_when_it_rolls_back(self, make_user, make_message, listener):
        alice = make_user("alice")

        with pytest.raises(RuntimeError), transaction.atomic():
            handlers.on_order_created(
                decode(make_message("order.created", order_created(alice.pk)))
            )
            raise RuntimeError

        assert list(listener.notifies(timeout=0.2)) == []
        assert not Notification.objects.exists()

    def test_not_when_no_e_mail_is_scheduled(self, make_user, make_message, listener):
        quiet = make_user("quiet", email_notifications=False)

        with transaction.atomic():
            handlers.on_order_created(
                decode(make_message("order.created", order_created(quiet.pk)))
            )

        assert list(listener.notifies(timeout=0.2)) == []
        assert Notification.objects.get().user == quiet
