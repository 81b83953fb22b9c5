"""MessageProcessor on the real PostgreSQL: inbox and effect commit or roll back together."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import OperationalError

from messaging.consumer import ACK, MessageProcessor, RejectMessage
from messaging.envelope import Envelope
from messaging.models import InboxMessage, OutboxMessage
from messaging.outbox import publish_event
from tests.factories import body, envelope, raw_envelope, stock_reserved

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def inventory_service(settings: Any) -> None:
    settings.MESSAGING_SERVICE = "inventory"


class Recorder:
    """A handler whose effect is an outbox row, and that can be told to fail after it."""

    def __init__(self, fail_with: Callable[[], BaseException] | None = None) -> None:
        self.fail_with = fail_with
        self.calls: list[Envelope] = []

    def __call__(self, envelope: Envelope) -> None:
        self.calls.append(envelope)
        publish_event(
            "stock.reserved",
            stock_reserved(envelope.data["order_id"]),
            correlation_id=envelope.correlation_id,
            causation=envelope,
        )
        if self.fail_with is not None:
            raise self.fail_with()


def _counts() -> tuple[int, int]:
    return InboxMessage.objects.count(), OutboxMessage.objects.count()


def test_applies_once_and_acks_the_duplicate() -> None:
    handler = Recorder()
    processor = MessageProcessor("inventory", {"order.created": handler}, max_attempts=3)
    message = envelope()
    raw = message.to_json().encode()
    assert processor.process(raw) == ACK
    assert processor.process(raw) == ACK
    assert processor.process(raw, attempt=2) == ACK
    assert len(handler.calls) == 1
    assert _counts() == (1, 1)
    inbox = InboxMessage.objects.get()
    assert (inbox.consumer, str(inbox.message_id), inbox.message_type) == (
        "inventory",
        message.id,
        "order.created",
    )
    effect = OutboxMessage.objects.get()
    assert f'"causation_id":"{message.id}"' in effect.body


def test_the_inbox_is_kept_per_consumer() -> None:
    raw = envelope().to_json().encode()
    first, second = Recorder(), Recorder()
    assert MessageProcessor("inventory", {"order.created": first}, 3).process(raw) == ACK
    assert MessageProcessor("audit", {"order.created": second}, 3).process(raw) == ACK
    assert (len(first.calls), len(second.calls)) == (1, 1)
    assert _counts() == (2, 2)


def test_same_payload_with_a_new_id_is_a_new_message() -> None:
    handler = Recorder()
    processor = MessageProcessor("inventory", {"order.created": handler}, 3)
    message = envelope()
    again = Envelope.new(
        message.type, message.data, source="orders", correlation_id=message.correlation_id
    )
    processor.process(message.to_json().encode())
    processor.process(again.to_json().encode())
    assert len(handler.calls) == 2


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x00garbage", "malformed: body is not JSON"),
        (body(raw_envelope(type="order.teleported")), "malformed: unknown event type"),
        (body(raw_envelope(data={"order_id": "nope"})), "malformed: order.created v1 payload"),
        (
            envelope("order.shipped", {"order_id": envelope().data["order_id"], "user_id": 1})
            .to_json()
            .encode(),
            "no handler for 'order.shipped' in inventory",
        ),
    ],
)
def test_malformed_or_unhandled_is_dead_at_once(raw: bytes, reason: str) -> None:
    handler = Recorder()
    outcome = MessageProcessor("inventory", {"order.created": handler}, 3).process(raw)
    assert outcome.action == "dead"
    assert outcome.reason.startswith(reason)
    assert handler.calls == []
    assert _counts() == (0, 0)


def test_reject_message_is_dead_at_once_and_rolls_back() -> None:
    handler = Recorder(lambda: RejectMessage("order 1 does not exist"))
    processor = MessageProcessor("inventory", {"order.created": handler}, 3)
    outcome = processor.process(envelope().to_json().encode(), attempt=1)
    assert (outcome.action, outcome.reason) == ("dead", "rejected: order 1 does not exist")
    assert _counts() == (0, 0)


def test_failure_retries_then_is_dead_after_max_attempts_rolling_back_each_time() -> None:
    handler = Recorder(lambda: ValueError("boom"))
    processor = MessageProcessor("inventory", {"order.created": handler}, max_attempts=3)
    raw = envelope().to_json().encode()
    for attempt in (1, 2):
        outcome = processor.process(raw, attempt)
        assert (outcome.action, outcome.attempt) == ("retry", attempt)
        assert outcome.reason.startswith("ValueError: boom")
        assert "Traceback" in outcome.reason
        assert _counts() == (0, 0)  # effect and inbox row rolled back together
    outcome = processor.process(raw, 3)
    assert (outcome.action, outcome.attempt) == ("dead", 3)
    assert outcome.reason.startswith("failed 3 times: ValueError: boom")
    assert _counts() == (0, 0)
    assert len(handler.calls) == 3

    handler.fail_with = None  # the cause is fixed: a replay applies it once
    assert processor.process(raw, 1) == ACK
    assert processor.process(raw, 1) == ACK
    assert _counts() == (1, 1)
    assert len(handler.calls) == 4


def test_a_handlers_own_database_error_is_a_failure_not_an_outage() -> None:
    message = envelope()

    def duplicate_effect(envelope: Envelope) -> None:
        Recorder()(envelope)
        OutboxMessage.objects.create(
            message_id=OutboxMessage.objects.get().message_id, exchange="x", routing_key="y"
        )

    processor = MessageProcessor("inventory", {"order.created": duplicate_effect}, 3)
    outcome = processor.process(message.to_json().encode())
    assert outcome.action == "retry"
    assert outcome.reason.startswith("IntegrityError")
    assert _counts() == (0, 0)


def test_a_database_outage_propagates_and_records_nothing() -> None:
    handler = Recorder(lambda: OperationalError("server closed the connection unexpectedly"))
    processor = MessageProcessor("inventory", {"order.created": handler}, 3)
    with pytest.raises(OperationalError):
        processor.process(envelope().to_json().encode())
    assert _counts() == (0, 0)
