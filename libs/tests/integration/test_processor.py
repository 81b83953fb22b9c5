"""MessageProcessor on the real PostgreSQL: inbox and effect commit or roll back together."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from messaging.consumer import ACK, Item, MessageProcessor, RejectMessage
from messaging.envelope import Envelope
from messaging.models import InboxMessage, OutboxMessage
from messaging.outbox import publish_event
from tests.factories import body, envelope, order_shipped, raw_envelope, stock_reserved

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
            envelope("order.shipped", order_shipped(envelope().data["order_id"], 1))
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
        # (The handler's events are written when it returns: it cannot read its own row.)
        taken = uuid.uuid4()
        for _ in range(2):
            OutboxMessage.objects.create(message_id=taken, exchange="x", routing_key="y")

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


# Batches: one transaction, one inbox insert, one outcome per message.


def _items(*raws: bytes, attempt: int = 1) -> list[Item]:
    return [Item(raw, attempt) for raw in raws]


def test_a_batch_is_applied_with_one_inbox_insert_and_a_duplicate_inside_it_once() -> None:
    handler = Recorder()
    processor = MessageProcessor("inventory", {"order.created": handler}, 3)
    messages = [envelope() for _ in range(5)]
    raws = [m.to_json().encode() for m in messages]
    with CaptureQueriesContext(connection) as queries:
        outcomes = processor.process_batch(_items(*raws, raws[2]))
    assert outcomes == [ACK] * 6
    assert sorted(e.id for e in handler.calls) == sorted(m.id for m in messages)
    assert _counts() == (5, 5)
    inbox_inserts = [q for q in queries if q["sql"].startswith("INSERT INTO messaging_inbox")]
    assert len(inbox_inserts) == 1
    # the second delivery of a whole batch changes nothing
    assert processor.process_batch(_items(*raws)) == [ACK] * 5
    assert len(handler.calls) == 5 and _counts() == (5, 5)


def test_a_batch_runs_in_one_transaction() -> None:
    transactions: list[int] = []

    def handler(envelope: Envelope) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT txid_current()")
            transactions.append(cursor.fetchone()[0])
        Recorder()(envelope)

    processor = MessageProcessor("inventory", {"order.created": handler}, 3)
    raws = [envelope().to_json().encode() for _ in range(4)]
    with CaptureQueriesContext(connection) as queries:
        assert processor.process_batch(_items(*raws)) == [ACK] * 4
    assert len(transactions) == 4 and len(set(transactions)) == 1
    # no NOTIFY for the relay: its writer publishes the events itself, right after the commit
    assert sum(1 for q in queries if q["sql"].startswith("NOTIFY")) == 0


def test_one_failing_message_does_not_hold_up_the_rest_of_its_batch() -> None:
    poison = envelope()

    def handler(envelope: Envelope) -> None:
        Recorder()(envelope)
        if envelope.id == poison.id:
            raise ValueError("boom")

    processor = MessageProcessor("inventory", {"order.created": handler}, 3)
    good = [envelope() for _ in range(3)]
    raws = [good[0], poison, good[1], good[2]]
    outcomes = processor.process_batch(_items(*(m.to_json().encode() for m in raws), attempt=2))
    assert [o.action for o in outcomes] == ["ack", "retry", "ack", "ack"]
    assert outcomes[1].attempt == 2 and outcomes[1].reason.startswith("ValueError: boom")
    # the good ones applied exactly once, the failing one not at all (rolled back)
    assert _counts() == (3, 3)
    assert set(InboxMessage.objects.values_list("message_id", flat=True)) == {
        uuid.UUID(m.id) for m in good
    }


def test_malformed_rejected_and_unhandled_in_a_batch_get_their_own_outcomes() -> None:
    rejected = envelope()

    def handler(envelope: Envelope) -> None:
        Recorder()(envelope)
        if envelope.id == rejected.id:
            raise RejectMessage("no such order")

    processor = MessageProcessor("inventory", {"order.created": handler}, 3)
    good = envelope()
    unhandled = envelope("order.shipped", order_shipped(good.data["order_id"], 1))
    outcomes = processor.process_batch(
        _items(
            b"\x00garbage",
            good.to_json().encode(),
            rejected.to_json().encode(),
            unhandled.to_json().encode(),
        )
    )
    assert [o.action for o in outcomes] == ["dead", "ack", "dead", "dead"]
    assert outcomes[0].reason.startswith("malformed: body is not JSON")
    assert outcomes[2].reason == "rejected: no such order"
    assert outcomes[3].reason.startswith("no handler for 'order.shipped'")
    assert _counts() == (1, 1)


def test_a_database_outage_in_a_batch_propagates_and_records_nothing() -> None:
    calls = [0]

    def handler(envelope: Envelope) -> None:
        calls[0] += 1
        Recorder()(envelope)
        if calls[0] == 2:
            raise OperationalError("server closed the connection unexpectedly")

    processor = MessageProcessor("inventory", {"order.created": handler}, 3)
    with pytest.raises(OperationalError):
        processor.process_batch(_items(*(envelope().to_json().encode() for _ in range(3))))
    assert _counts() == (0, 0)


def test_a_batch_that_deadlocks_is_applied_one_message_at_a_time() -> None:
    calls = [0]

    def handler(envelope: Envelope) -> None:
        calls[0] += 1
        Recorder()(envelope)
        if calls[0] == 2:  # as PostgreSQL aborts the loser of a deadlock
            raise OperationalError("deadlock detected") from psycopg.errors.DeadlockDetected()

    processor = MessageProcessor("inventory", {"order.created": handler}, 3)
    messages = [envelope() for _ in range(3)]
    outcomes = processor.process_batch(_items(*(m.to_json().encode() for m in messages)))
    assert outcomes == [ACK] * 3
    assert _counts() == (3, 3)  # each applied once, in its own transaction
    assert calls[0] == 2 + 3
