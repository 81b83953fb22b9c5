"""An e-mail delivery is written with its notification, in the consumer's transaction."""

import uuid

import pytest
from django.db import transaction
from django.utils import timezone

from notifications.email_deliveries import email_retry_delay
from notifications.models import EmailDelivery, Notification
from notifications.services import notification_create
from tests.factories import user_registered

pytestmark = pytest.mark.django_db

ORDER_ID = str(uuid.uuid4())
STOCK_LOW = {"product_id": 7, "sku": "SKU-7", "name": "Widget", "available": 2, "threshold": 5}


def confirmed(user_id: int) -> dict:
    return {"order_id": ORDER_ID, "user_id": user_id, "total": "42.50"}


class TestScheduled:
    def test_a_new_notification_gets_a_pending_delivery_to_the_users_address(
        self, make_user, make_message, deliver
    ):
        alice = make_user("alice", email="Alice@Example.COM")
        before = timezone.now()

        assert deliver(make_message("order.confirmed", confirmed(alice.pk))).action == "ack"

        delivery = EmailDelivery.objects.get()
        assert delivery.notification == Notification.objects.get()
        assert delivery.recipient == "Alice@example.com"
        assert (delivery.status, delivery.attempts, delivery.sent_at) == ("pending", 0, None)
        assert before <= delivery.next_attempt_at <= timezone.now()

    def test_every_staff_member_told_of_low_stock_gets_one(self, make_user, make_message, deliver):
        make_user("boss", is_staff=True)
        make_user("clerk", is_staff=True)

        deliver(make_message("stock.low", STOCK_LOW, source="inventory"))

        assert sorted(EmailDelivery.objects.values_list("recipient", flat=True)) == [
            "boss@example.com",
            "clerk@example.com",
        ]

    def test_none_when_the_user_turned_e_mail_off(self, make_user, make_message, deliver):
        alice = make_user("alice", email_notifications=False)

        assert deliver(make_message("order.confirmed", confirmed(alice.pk))).action == "ack"

        assert Notification.objects.count() == 1
        assert not EmailDelivery.objects.exists()

    def test_none_without_an_address(self, make_user, make_message, deliver):
        boss = make_user("boss", is_staff=True, email="")

        deliver(make_message("stock.low", STOCK_LOW, source="inventory"))

        assert Notification.objects.get().user == boss
        assert not EmailDelivery.objects.exists()

    def test_none_when_the_transaction_rolls_back(self, make_user):
        alice = make_user("alice")

        with pytest.raises(RuntimeError), transaction.atomic():
            notification_create(
                user_id=alice.pk,
                kind="welcome",
                title="Hi",
                body="Hi",
                causation=user_registered(alice),
            )
            raise RuntimeError("the handler failed after creating it")

        assert not EmailDelivery.objects.exists()


class TestDuplicates:
    def test_the_same_message_twice_gives_one_notification_and_one_delivery(
        self, make_user, make_message, deliver
    ):
        alice = make_user("alice")
        body = make_message("order.confirmed", confirmed(alice.pk))

        for _ in range(3):
            assert deliver(body).action == "ack"

        assert Notification.objects.count() == 1
        assert EmailDelivery.objects.count() == 1

    def test_the_same_order_event_under_two_message_ids_gives_one_delivery(
        self, make_user, make_message, deliver
    ):
        alice = make_user("alice")

        deliver(make_message("order.confirmed", confirmed(alice.pk)))
        deliver(make_message("order.confirmed", confirmed(alice.pk)))

        assert Notification.objects.count() == 1
        assert EmailDelivery.objects.count() == 1


class TestRetryDelay:
    def test_doubles_from_the_base(self):
        delays = [email_retry_delay(attempts=n, base_seconds=30).total_seconds() for n in (1, 2, 3)]

        assert delays == [30, 60, 120]

    def test_is_at_most_an_hour(self):
        assert email_retry_delay(attempts=1000, base_seconds=30).total_seconds() == 3600
