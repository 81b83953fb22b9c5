"""What one wake-up of the e-mail worker costs: a few statements and one mail connection per
batch, whatever the batch's size (a real SMTP server on loopback, see conftest)."""

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core.mail.backends.smtp import EmailBackend
from django.db import connection
from django.test.utils import CaptureQueriesContext

from notifications import email_worker
from notifications.email_deliveries import _claim_portable, email_deliveries_claim
from notifications.email_worker import EmailDeliveryWorker
from notifications.models import EmailDelivery

pytestmark = pytest.mark.django_db(transaction=True)

Status = EmailDelivery.Status
STOCK_LOW = {"product_id": 7, "sku": "SKU-7", "name": "Widget", "available": 2, "threshold": 5}
# One wake-up that sends a batch: the expired claims (every 30 s, so in a first run), the claim
# (one UPDATE ... RETURNING), the sent ones recorded (one UPDATE). Per-row work would grow it.
STATEMENTS_PER_BATCH = 3


@pytest.fixture
def due(make_user, make_message, deliver) -> Callable[[int], None]:
    """``count`` pending deliveries, due now: low stock told to ``count`` members of staff."""

    def make(count: int) -> None:
        for index in range(count):
            make_user(f"staff{index}", is_staff=True)
        assert deliver(make_message("stock.low", STOCK_LOW, source="inventory")).action == "ack"
        assert EmailDelivery.objects.filter(status=Status.PENDING).count() == count

    return make


@pytest.fixture
def smtp_opened(monkeypatch) -> list[int]:
    """One entry per connection the SMTP backend actually opened."""
    opened: list[int] = []
    real_open = EmailBackend.open

    def open_and_count(self: EmailBackend) -> bool | None:
        new = real_open(self)
        if new:
            opened.append(1)
        return new

    monkeypatch.setattr(EmailBackend, "open", open_and_count)
    return opened


@pytest.mark.parametrize("count", [1, 20])
def test_a_batch_costs_the_same_few_statements_whatever_its_size(
    smtp_settings, mail_server, due, smtp_opened, monkeypatch, count
):
    monkeypatch.setattr(email_worker, "RECORD_SENT_EVERY_SECONDS", 3600)  # a slow run: one record
    mail_server.start()
    due(count)
    worker = EmailDeliveryWorker()

    with CaptureQueriesContext(connection) as queries:
        assert worker.run_once() == count

    assert len(queries) == STATEMENTS_PER_BATCH, [q["sql"] for q in queries]
    assert len(smtp_opened) == 1
    assert len(mail_server.received) == count
    assert EmailDelivery.objects.filter(status=Status.SENT, attempts=1).count() == count
    assert worker.sent == count


def test_a_batch_waits_for_the_server_with_the_same_few_statements(smtp_settings, mail_server, due):
    due(20)  # the server is down: nothing goes out, every delivery is retried later
    worker = EmailDeliveryWorker()

    with CaptureQueriesContext(connection) as queries:
        assert worker.run_once() == 20

    assert len(queries) == STATEMENTS_PER_BATCH, [q["sql"] for q in queries]
    waiting = EmailDelivery.objects.filter(status=Status.PENDING, attempts=1)
    assert waiting.count() == 20
    assert len({d.next_attempt_at for d in waiting}) == 1
    assert all("Connection refused" in d.last_error for d in waiting)


def test_one_refused_message_does_not_hold_back_the_rest_of_the_batch(
    smtp_settings, mail_server, due, smtp_opened
):
    mail_server.start()
    due(5)
    refused_to = "staff2@example.com"
    real_handle = mail_server.handle_DATA

    async def refuse_one(server: Any, session: Any, envelope: Any) -> str:
        if envelope.rcpt_tos == [refused_to]:
            return "550 5.1.1 No such mailbox"
        return await real_handle(server, session, envelope)

    mail_server.handle_DATA = refuse_one

    assert EmailDeliveryWorker().run_once() == 5

    assert len(smtp_opened) == 1
    assert len(mail_server.received) == 4
    refused = EmailDelivery.objects.get(recipient=refused_to)
    assert (refused.status, refused.attempts) == (Status.PENDING, 1)
    assert "550" in refused.last_error
    assert EmailDelivery.objects.filter(status=Status.SENT).count() == 4


def test_sends_are_recorded_while_a_long_batch_goes_on(
    smtp_settings, mail_server, due, monkeypatch
):
    """The window between the server taking a message and ``sent`` being recorded stays short:
    a batch that takes long records what went out as it goes."""
    monkeypatch.setattr(email_worker, "RECORD_SENT_EVERY_SECONDS", 0)
    real_mark_sent = email_worker.email_deliveries_mark_sent
    recorded: list[int] = []

    def counting_mark_sent(**kwargs: Any) -> None:
        recorded.append(len(kwargs["deliveries"]))
        real_mark_sent(**kwargs)

    monkeypatch.setattr(email_worker, "email_deliveries_mark_sent", counting_mark_sent)
    mail_server.start()
    due(3)

    EmailDeliveryWorker().run_once()

    assert recorded == [1, 1, 1]
    assert EmailDelivery.objects.filter(status=Status.SENT).count() == 3


def test_full_batches_are_claimed_one_after_the_other_without_asking_when_next_is_due(
    smtp_settings, mail_server, due, monkeypatch
):
    mail_server.start()
    due(12)
    calls: list[str] = []
    real_claim = email_worker.email_deliveries_claim
    real_next_due = email_worker.email_delivery_next_due

    def claim(**kwargs: Any) -> list[EmailDelivery]:
        claimed = real_claim(**kwargs)
        calls.append(f"claimed {len(claimed)}")
        return claimed

    def next_due() -> Any:
        calls.append("next due")
        return real_next_due()

    monkeypatch.setattr(email_worker, "email_deliveries_claim", claim)
    monkeypatch.setattr(email_worker, "email_delivery_next_due", next_due)
    worker = EmailDeliveryWorker(batch_size=5, poll_seconds=30)
    thread = threading.Thread(target=worker.run_forever, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while "next due" not in calls:
            assert time.monotonic() < deadline, calls
            time.sleep(0.02)
    finally:
        worker.stop_event.set()
        thread.join(10)
    assert not thread.is_alive()

    assert calls[:4] == ["claimed 5", "claimed 5", "claimed 2", "next due"]
    assert len(mail_server.received) == 12


def test_the_portable_claim_takes_the_same_rows_as_the_one_statement_claim(due):
    """SQLite (``make up`` without PostgreSQL) claims with the ORM; both must agree."""
    due(4)
    turned_off = EmailDelivery.objects.get(recipient="staff1@example.com").notification.user
    turned_off.email_notifications = False
    turned_off.save()

    portable = _claim_portable(limit=2)
    one_statement = email_deliveries_claim(limit=10)

    assert len(portable) + len(one_statement) == 3
    for claimed in (portable, one_statement):
        assert all(
            (d.status, d.attempts, d.claimed_at is not None) == (Status.SENDING, 1, True)
            for d in claimed
        )
        assert [(d.next_attempt_at, d.pk) for d in claimed] == sorted(
            (d.next_attempt_at, d.pk) for d in claimed
        )
    stored = {d.pk: d for d in EmailDelivery.objects.all()}
    for delivery in portable + one_statement:
        assert stored[delivery.pk].status == Status.SENDING
        assert stored[delivery.pk].attempts == 1
        assert stored[delivery.pk].claimed_at == delivery.claimed_at
        # what the message needs came with the claim: no further query to build it
        with CaptureQueriesContext(connection) as queries:
            assert delivery.notification.user.username.startswith("staff")
            assert delivery.notification.title
        assert len(queries) == 0
    cancelled = EmailDelivery.objects.get(recipient="staff1@example.com")
    assert (cancelled.status, cancelled.attempts) == (Status.CANCELLED, 0)
    assert "turned off" in cancelled.last_error
