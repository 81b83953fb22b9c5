import uuid

import pytest

from messaging.consumer import RejectMessage
from messaging.envelope import decode
from messaging.models import InboxMessage, OutboxMessage
from notifications import handlers
from notifications.models import Notification

pytestmark = pytest.mark.django_db

ORDER_ID = str(uuid.uuid4())


def order_events(user_id: int) -> list[tuple[str, dict, str]]:
    """(event type, payload, notification kind) for every order event told to its owner."""
    order = {"order_id": ORDER_ID, "user_id": user_id}
    return [
        ("order.confirmed", {**order, "total": "42.50"}, "order_confirmed"),
        ("order.rejected", {**order, "reason": "only 2 of SKU-1 left"}, "order_rejected"),
        ("order.cancelled", {**order, "reason": "cancelled by the customer"}, "order_cancelled"),
        ("order.shipped", order, "order_shipped"),
    ]


class TestOrderEvents:
    @pytest.mark.parametrize(
        "index", range(4), ids=["confirmed", "rejected", "cancelled", "shipped"]
    )
    def test_one_notification_for_the_orders_owner(self, index, make_user, make_message, deliver):
        owner = make_user("alice")
        make_user("bob")
        event_type, data, kind = order_events(owner.pk)[index]

        outcome = deliver(make_message(event_type, data))

        assert outcome.action == "ack", outcome.reason
        notification = Notification.objects.get()
        assert notification.user == owner
        assert notification.kind == kind
        assert str(notification.order_id) == ORDER_ID
        assert ORDER_ID in notification.title
        assert notification.read_at is None

    def test_order_created_tells_the_owner_it_was_received(self, make_user, make_message, deliver):
        owner = make_user("alice")
        make_user("bob")
        data = {
            "order_id": ORDER_ID,
            "user_id": owner.pk,
            "lines": [{"product_id": 1, "quantity": 2}],
        }

        outcome = deliver(make_message("order.created", data))

        assert outcome.action == "ack", outcome.reason
        notification = Notification.objects.get()
        assert (notification.user, notification.kind) == (owner, "order_received")
        assert notification.title == f"Order {ORDER_ID} received"
        assert str(notification.order_id) == ORDER_ID

    def test_confirmation_tells_the_total(self, make_user, make_message, deliver):
        owner = make_user("alice")
        deliver(make_message("order.confirmed", order_events(owner.pk)[0][1]))

        assert "42.50" in Notification.objects.get().body

    def test_rejection_tells_the_reason(self, make_user, make_message, deliver):
        owner = make_user("alice")
        deliver(make_message("order.rejected", order_events(owner.pk)[1][1]))

        assert "only 2 of SKU-1 left" in Notification.objects.get().body

    @pytest.mark.parametrize(
        "index", range(4), ids=["confirmed", "rejected", "cancelled", "shipped"]
    )
    def test_unknown_user_is_rejected_to_the_dead_letter_queue(
        self, index, make_message, deliver, db
    ):
        event_type, data, _ = order_events(987654)[index]

        outcome = deliver(make_message(event_type, data))

        assert outcome.action == "dead"
        assert "unknown user 987654" in outcome.reason
        assert not Notification.objects.exists()
        assert not InboxMessage.objects.exists()  # rolled back: a replay can still apply it

    def test_handler_raises_reject_message_for_unknown_user(self, make_message, db):
        envelope = decode(make_message("order.shipped", {"order_id": ORDER_ID, "user_id": 5}))

        with pytest.raises(RejectMessage):
            handlers.on_order_shipped(envelope)


class TestStockLow:
    DATA = {"product_id": 7, "sku": "SKU-7", "name": "Widget", "available": 2, "threshold": 5}

    def test_every_active_staff_account_is_told_and_no_customer(
        self, make_user, make_message, deliver
    ):
        staff = [make_user("boss", is_staff=True), make_user("clerk", is_staff=True)]
        make_user("retired", is_staff=True, is_active=False)
        make_user("alice")

        outcome = deliver(make_message("stock.low", self.DATA, source="inventory"))

        assert outcome.action == "ack", outcome.reason
        notifications = Notification.objects.order_by("user_id")
        assert [n.user for n in notifications] == staff
        for notification in notifications:
            assert notification.kind == "stock_low"
            assert notification.product_id == 7
            assert "SKU-7" in notification.title
            assert "2" in notification.body and "5" in notification.body

    def test_no_staff_is_acknowledged_with_nothing_to_do(self, make_user, make_message, deliver):
        make_user("alice")

        outcome = deliver(make_message("stock.low", self.DATA, source="inventory"))

        assert outcome.action == "ack"
        assert not Notification.objects.exists()


class TestWelcome:
    def test_user_registered_gives_a_welcome(self, make_user, make_message, deliver):
        user = make_user("alice")
        data = {"user_id": user.pk, "username": "alice", "email": "alice@example.com"}

        outcome = deliver(make_message("user.registered", data, source="user-notification"))

        assert outcome.action == "ack", outcome.reason
        notification = Notification.objects.get()
        assert (notification.user, notification.kind) == (user, "welcome")
        assert "alice" in notification.title

    def test_the_event_published_by_registration_gives_the_welcome(self, api, deliver):
        response = api.post(
            "/api/users/register/",
            {"username": "carol", "email": "carol@example.com", "password": "correct-horse-9"},
            format="json",
        )
        body = OutboxMessage.objects.get(routing_key="user.registered").body.encode()

        assert deliver(body).action == "ack"
        assert Notification.objects.get().user_id == response.json()["id"]

    def test_unknown_user_is_rejected(self, make_message, deliver, db):
        data = {"user_id": 424242, "username": "ghost", "email": ""}

        outcome = deliver(make_message("user.registered", data, source="user-notification"))

        assert outcome.action == "dead"
        assert not Notification.objects.exists()


class TestRedelivery:
    def test_the_same_message_twice_gives_one_notification(self, make_user, make_message, deliver):
        owner = make_user("alice")
        body = make_message("order.confirmed", order_events(owner.pk)[0][1])

        assert deliver(body).action == "ack"
        assert deliver(body).action == "ack"

        assert Notification.objects.count() == 1
        assert InboxMessage.objects.filter(consumer="user-notification").count() == 1

    def test_ten_deliveries_of_stock_low_give_one_notification_per_staff(
        self, make_user, make_message, deliver
    ):
        make_user("boss", is_staff=True)
        make_user("clerk", is_staff=True)
        body = make_message("stock.low", TestStockLow.DATA, source="inventory")

        for _ in range(10):
            assert deliver(body).action == "ack"

        assert Notification.objects.count() == 2

    def test_the_database_guards_even_without_the_inbox(self, make_user, make_message):
        owner = make_user("alice")
        envelope = decode(
            make_message("order.shipped", {"order_id": ORDER_ID, "user_id": owner.pk})
        )

        handlers.on_order_shipped(envelope)
        handlers.on_order_shipped(envelope)

        assert Notification.objects.count() == 1

    def test_the_same_order_event_under_two_message_ids_gives_one_notification(
        self, make_user, make_message, deliver
    ):
        owner = make_user("alice")
        confirmed = order_events(owner.pk)[0][1]

        assert deliver(make_message("order.confirmed", confirmed)).action == "ack"
        assert deliver(make_message("order.confirmed", confirmed)).action == "ack"

        assert Notification.objects.count() == 1

    def test_two_events_about_one_order_give_two_notifications(
        self, make_user, make_message, deliver
    ):
        owner = make_user("alice")
        events = order_events(owner.pk)
        deliver(make_message(*events[0][:2]))
        deliver(make_message(*events[3][:2]))

        assert Notification.objects.filter(user=owner).count() == 2
