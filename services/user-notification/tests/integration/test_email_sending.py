"""The e-mail worker against a real SMTP server on loopback (aiosmtpd, see conftest)."""

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError
from django.utils import timezone

from notifications import email_worker
from notifications.email_deliveries import email_deliveries_claim
from notifications.email_messages import PLAIN_HEADERS, email_message_build
from notifications.email_worker import EmailDeliveryJob
from notifications.models import EmailDelivery, Notification

pytestmark = pytest.mark.django_db(transaction=True)

ORDER_ID = str(uuid.uuid4())
Status = EmailDelivery.Status


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def make_due() -> None:
    EmailDelivery.objects.filter(status=Status.PENDING).update(next_attempt_at=timezone.now())


def delivery() -> EmailDelivery:
    return EmailDelivery.objects.get()


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def order_event(alice, make_message, deliver) -> Callable[..., None]:
    """Hand alice's order event to the consumer's processor (committed, as in production)."""

    def send(event_type: str = "order.confirmed", **data: object) -> None:
        data = {"order_id": ORDER_ID, "user_id": alice.pk, **data}
        if event_type == "order.confirmed":
            data.setdefault("total", "42.50")
        outcome = deliver(make_message(event_type, data))
        assert outcome.action == "ack", outcome.reason

    return send


@pytest.fixture
def running_worker() -> Iterator[Callable[..., EmailDeliveryJob]]:
    """Start ``EmailDeliveryJob.run_forever`` in a thread; stopped after the test."""
    started: list[tuple[EmailDeliveryJob, threading.Thread]] = []

    def start(**options: float) -> EmailDeliveryJob:
        worker = EmailDeliveryJob(**options)  # type: ignore[arg-type]
        thread = threading.Thread(target=worker.run_forever, daemon=True)
        thread.start()
        started.append((worker, thread))
        return worker

    yield start
    for worker, _ in started:
        worker.stop_event.set()
    for _, thread in started:
        thread.join(10)
        assert not thread.is_alive()


class TestDelivered:
    def test_the_worker_builds_messages_written_with_plain_headers(self, order_event):
        # What keeps a notice's e-mail at half the cost (test_email_headers.py: same bytes).
        order_event("order.confirmed", total="42.50")

        assert email_message_build(delivery=delivery()).message().policy is PLAIN_HEADERS

    def test_the_message_names_the_order_and_tells_the_outcome(
        self, smtp_settings, mail_server, order_event
    ):
        mail_server.start()
        order_event("order.confirmed", total="42.50")

        assert EmailDeliveryJob().run_once() == 1

        (message,) = mail_server.received
        assert message["Subject"] == f"Order {ORDER_ID} confirmed"
        assert message["To"] == "alice@example.com"
        assert message["X-Envelope-To"] == "alice@example.com"
        assert message["From"] == "Shop <notifications@shop.example>"
        notification = Notification.objects.get()
        assert message["Message-ID"] == f"<notification-{notification.pk}@shop.example>"
        body = message.get_payload(decode=True).decode()
        assert f"Order {ORDER_ID} confirmed." in body
        assert "Total: 42.50" in body
        sent = delivery()
        assert (sent.status, sent.attempts, sent.last_error) == (Status.SENT, 1, "")
        assert sent.sent_at is not None

    @pytest.mark.parametrize(
        ("event_type", "data", "told"),
        [
            ("order.created", {"lines": [{"product_id": 1, "quantity": 2}]}, ["received"]),
            ("order.rejected", {"reason": "only 2 of SKU-1 left"}, ["rejected", "only 2 of"]),
            ("order.cancelled", {"reason": "cancelled by the customer"}, ["cancelled", "by the"]),
            ("order.shipped", {}, ["shipped"]),
        ],
        ids=["received", "rejected", "cancelled", "shipped"],
    )
    def test_every_outcome_is_told_in_the_body(
        self, smtp_settings, mail_server, order_event, event_type, data, told
    ):
        mail_server.start()
        order_event(event_type, **data)

        EmailDeliveryJob().run_once()

        (message,) = mail_server.received
        assert ORDER_ID in message["Subject"]
        body = message.get_payload(decode=True).decode()
        for words in told:
            assert words in body

    def test_a_sent_e_mail_is_not_sent_again(self, smtp_settings, mail_server, order_event):
        mail_server.start()
        order_event()
        worker = EmailDeliveryJob()

        worker.run_once()
        make_due()
        assert worker.run_once() == 0

        assert len(mail_server.received) == 1


class TestServerDown:
    def test_delivered_once_the_server_is_back_exactly_once(
        self, smtp_settings, mail_server, order_event
    ):
        order_event()
        worker = EmailDeliveryJob()

        worker.run_once()  # nobody listens on the port yet
        waiting = delivery()
        assert (waiting.status, waiting.attempts) == (Status.PENDING, 1)
        assert "Connection refused" in waiting.last_error
        assert worker.run_once() == 0  # not due before its back-off

        mail_server.start()
        make_due()
        worker.run_once()
        make_due()
        worker.run_once()

        assert len(mail_server.received) == 1
        assert mail_server.data_commands == 1
        sent = delivery()
        assert (sent.status, sent.attempts) == (Status.SENT, 2)

    def test_retries_back_off_exponentially(self, smtp_settings, mail_server, order_event):
        smtp_settings.EMAIL_MAX_ATTEMPTS = 5
        order_event()
        worker = EmailDeliveryJob()

        waits = []
        for _ in range(3):
            make_due()
            before = timezone.now()
            worker.run_once()
            waits.append((delivery().next_attempt_at - before).total_seconds())

        assert [round(w / 60) for w in waits] == [1, 2, 4]

    def test_a_running_worker_delivers_when_the_server_comes_back(
        self, smtp_settings, mail_server, order_event, running_worker
    ):
        smtp_settings.EMAIL_RETRY_BASE_SECONDS = 0.1
        smtp_settings.EMAIL_MAX_ATTEMPTS = 50
        running_worker()
        order_event()
        wait_until(lambda: delivery().attempts >= 2)

        mail_server.start()
        wait_until(lambda: delivery().status == Status.SENT)
        time.sleep(0.5)

        assert len(mail_server.received) == 1
        assert mail_server.data_commands == 1


class TestRefused:
    def test_retried_then_failed_after_the_last_attempt(
        self, smtp_settings, mail_server, order_event
    ):
        mail_server.refuse_with = "550 5.7.1 Delivery not authorized"
        mail_server.start()
        order_event()
        worker = EmailDeliveryJob()

        worker.run_once()
        assert (delivery().status, delivery().attempts) == (Status.PENDING, 1)
        for _ in range(4):
            make_due()
            worker.run_once()

        failed = delivery()
        assert (failed.status, failed.attempts) == (Status.FAILED, 3)
        assert "550" in failed.last_error
        assert mail_server.data_commands == 3
        assert mail_server.received == []

    def test_accepted_on_a_later_attempt(self, smtp_settings, mail_server, order_event):
        mail_server.refuse_with = "451 4.3.0 Try again later"
        mail_server.start()
        order_event()
        worker = EmailDeliveryJob()
        worker.run_once()

        mail_server.refuse_with = None
        make_due()
        worker.run_once()

        assert (delivery().status, delivery().attempts) == (Status.SENT, 2)
        assert len(mail_server.received) == 1


class TestNeverTwice:
    def test_a_connection_lost_during_the_message_is_not_retried(
        self, smtp_settings, mail_server, order_event
    ):
        mail_server.hang_up = True
        mail_server.start()
        order_event()
        worker = EmailDeliveryJob()

        worker.run_once()
        make_due()
        worker.run_once()

        failed = delivery()
        assert (failed.status, failed.attempts) == (Status.FAILED, 1)
        assert failed.last_error.startswith("outcome unknown")
        assert mail_server.data_commands == 1

    def test_a_claim_left_by_a_dead_worker_expires_to_failed_and_is_not_sent(
        self, smtp_settings, mail_server, order_event
    ):
        mail_server.start()
        order_event()
        email_deliveries_claim(limit=10)  # then the worker was killed
        EmailDelivery.objects.update(claimed_at=timezone.now() - timedelta(hours=1))

        assert EmailDeliveryJob().run_once() == 0

        failed = delivery()
        assert failed.status == Status.FAILED
        assert "never sent twice" in failed.last_error
        assert mail_server.received == []

    def test_a_recent_claim_is_left_to_its_worker(self, smtp_settings, mail_server, order_event):
        mail_server.start()
        order_event()
        email_deliveries_claim(limit=10)

        assert EmailDeliveryJob().run_once() == 0

        assert delivery().status == Status.SENDING
        assert mail_server.received == []

    def test_two_workers_send_every_e_mail_once(
        self, smtp_settings, mail_server, make_user, make_message, deliver, running_worker
    ):
        mail_server.start()
        for index in range(30):
            make_user(f"staff{index}", is_staff=True)
        running_worker(batch_size=4)
        running_worker(batch_size=4)

        data = {"product_id": 7, "sku": "SKU-7", "name": "Widget", "available": 2, "threshold": 5}
        assert deliver(make_message("stock.low", data, source="inventory")).action == "ack"

        wait_until(lambda: EmailDelivery.objects.filter(status=Status.SENT).count() == 30)
        time.sleep(0.3)
        recipients = sorted(m["To"] for m in mail_server.received)
        assert recipients == sorted(f"staff{i}@example.com" for i in range(30))
        assert set(EmailDelivery.objects.values_list("attempts", flat=True)) == {1}

    def test_a_stopping_worker_gives_back_what_it_did_not_try(
        self, smtp_settings, mail_server, order_event
    ):
        mail_server.start()
        order_event()
        worker = EmailDeliveryJob()
        worker.stop_event.set()

        worker.run_once()

        waiting = delivery()
        assert (waiting.status, waiting.attempts, waiting.claimed_at) == (Status.PENDING, 0, None)
        assert mail_server.received == []


class TestPreference:
    def test_turned_off_before_sending_cancels_the_e_mail(
        self, smtp_settings, mail_server, order_event, alice
    ):
        mail_server.start()
        order_event()
        alice.email_notifications = False
        alice.save()

        EmailDeliveryJob().run_once()

        assert delivery().status == Status.CANCELLED
        assert mail_server.received == []


class TestWorkerLoop:
    def test_wakes_on_commit_not_on_its_poll(
        self, smtp_settings, mail_server, order_event, running_worker
    ):
        mail_server.start()
        running_worker(poll_seconds=30)
        time.sleep(0.3)  # idle, waiting

        started = time.monotonic()
        order_event()
        wait_until(lambda: len(mail_server.received) == 1, timeout=5)

        assert time.monotonic() - started < 5

    def test_commits_close_together_are_sent_as_one_batch(
        self, smtp_settings, mail_server, order_event, running_worker, monkeypatch
    ):
        claims: list[int] = []
        claim = email_worker.email_deliveries_claim

        def counting(**kwargs: Any) -> list[EmailDelivery]:
            claimed = claim(**kwargs)
            if claimed:
                claims.append(len(claimed))
            return claimed

        monkeypatch.setattr(email_worker, "email_deliveries_claim", counting)
        monkeypatch.setattr(EmailDeliveryJob, "gather_seconds", 1.0)  # wide, for a slow machine
        mail_server.start()
        running_worker(poll_seconds=30)
        time.sleep(0.3)  # idle, waiting
        order_event("order.confirmed")  # three transactions, three wake-ups
        order_event("order.rejected", reason="out of stock")
        order_event("order.cancelled", reason="changed my mind")
        wait_until(lambda: len(mail_server.received) == 3, timeout=10)
        assert claims == [3]  # the first wake-up waited for the other two

    def test_survives_a_database_outage(
        self, smtp_settings, mail_server, order_event, running_worker, monkeypatch
    ):
        mail_server.start()
        real_claim = email_worker.email_deliveries_claim
        failures: list[int] = []

        def flaky_claim(**kwargs):
            if len(failures) < 3:
                failures.append(1)
                raise OperationalError("the database system is shutting down")
            return real_claim(**kwargs)

        monkeypatch.setattr(email_worker, "email_deliveries_claim", flaky_claim)
        order_event()
        running_worker()

        wait_until(lambda: delivery().status == Status.SENT)
        assert len(failures) == 3
        assert len(mail_server.received) == 1

    def test_a_send_is_recorded_once_the_database_is_back(
        self, smtp_settings, mail_server, order_event, monkeypatch
    ):
        mail_server.start()
        real_mark_sent = email_worker.email_deliveries_mark_sent
        failures: list[int] = []

        def flaky_mark_sent(**kwargs):
            if len(failures) < 2:
                failures.append(1)
                raise OperationalError("server closed the connection unexpectedly")
            return real_mark_sent(**kwargs)

        monkeypatch.setattr(email_worker, "email_deliveries_mark_sent", flaky_mark_sent)
        order_event()

        EmailDeliveryJob().run_once()

        assert (delivery().status, delivery().attempts) == (Status.SENT, 1)
        assert len(mail_server.received) == 1
