"""The consumer against the real RabbitMQ and PostgreSQL, run in a thread as in production."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from pika.adapters.blocking_connection import BlockingChannel

from messaging.consumer import ATTEMPT_HEADER, RejectMessage
from messaging.envelope import Envelope
from messaging.models import InboxMessage, OutboxMessage
from messaging.outbox import publish_event
from tests.factories import body, envelope, raw_envelope, stock_reserved
from tests.integration.conftest import RETRY_DELAYS_MS, Broker, running_consumer, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def inventory_service(settings: Any, broker: Broker) -> None:
    settings.MESSAGING_SERVICE = "inventory"
    settings.MESSAGING_PREFIX = broker.prefix
    broker.declare()


class Handler:
    """Reserves stock (writes a stock.reserved outbox row); fails its first ``failures`` calls."""

    def __init__(self, failures: int = 0, error: type[Exception] = RuntimeError) -> None:
        self.failures = failures
        self.error = error
        self.attempts: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, envelope: Envelope) -> None:
        with self.lock:
            self.attempts.append(envelope.id)
            failing = len(self.attempts) <= self.failures
        publish_event(
            "stock.reserved",
            stock_reserved(envelope.data["order_id"]),
            correlation_id=envelope.correlation_id,
            causation=envelope,
        )
        if failing:
            raise self.error(f"flaky failure {len(self.attempts)}")


def in_transactions(
    transactions: list[int], then: Callable[[Envelope], None]
) -> Callable[[Envelope], None]:
    """A handler that notes the id of the transaction each message is applied in, then calls
    ``then``."""

    def handler(envelope: Envelope) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT txid_current()")
            transactions.append(cursor.fetchone()[0])
        then(envelope)

    return handler


def _effects() -> int:
    return OutboxMessage.objects.count()


def test_applies_a_message_once_and_ignores_a_duplicate(broker: Broker) -> None:
    handler = Handler()
    message = envelope()
    raw = message.to_json().encode()
    with running_consumer(broker, "inventory", {"order.created": handler}) as consumer:
        broker.publish_event("order.created", raw, message_id=message.id)
        broker.publish_event("order.created", raw, message_id=message.id)
        wait_for(lambda: consumer.handled == 2)
    assert handler.attempts == [message.id]
    assert _effects() == 1
    assert InboxMessage.objects.filter(consumer="inventory", message_id=message.id).count() == 1
    effect = json.loads(OutboxMessage.objects.get().body)
    assert effect["causation_id"] == message.id
    assert effect["correlation_id"] == message.correlation_id
    queue = broker.names.queue("inventory")
    assert broker.message_count(queue) == 0  # both acked
    assert broker.message_count(broker.names.dead_letter_queue("inventory")) == 0


def test_malformed_messages_go_straight_to_the_dlq_and_consuming_goes_on(broker: Broker) -> None:
    handler = Handler()
    queue = broker.names.queue("inventory")
    schema_invalid = raw_envelope()
    schema_invalid["data"]["lines"] = []
    bad = {
        "bad-json": (b'{"id": ', "malformed: body is not JSON"),
        "not-object": (b"[]", "malformed: invalid envelope: (root): [] is not of type"),
        "unknown-type": (
            body(raw_envelope(type="order.teleported")),
            "malformed: unknown event type 'order.teleported' version 1",
        ),
        "schema": (body(schema_invalid), "malformed: order.created v1 payload invalid at lines"),
        "too-big": (b" " * 1_000_001, "malformed: body of 1000001 bytes exceeds"),
        "deep": (b"[" * 50_000, "malformed: body is not JSON"),
        "bad-attempt": (b"{", "malformed: body is not JSON"),
    }
    good = envelope()
    with running_consumer(broker, "inventory", {"order.created": handler}) as consumer:
        for name, (raw, _) in bad.items():
            headers = {ATTEMPT_HEADER: "garbage"} if name == "bad-attempt" else None
            broker.publish_to_queue(queue, raw, message_id=name, headers=headers)
        broker.publish_event("order.created", good.to_json().encode(), message_id=good.id)
        wait_for(lambda: consumer.handled == len(bad) + 1)
    assert handler.attempts == [good.id]  # the good one behind them was applied
    assert _effects() == 1
    dlq = broker.drain(broker.names.dead_letter_queue("inventory"))
    dead = {delivery.properties.message_id: delivery for delivery in dlq}
    assert set(dead) == set(bad)
    for name, (raw, reason) in bad.items():
        delivery = dead[name]
        assert delivery.body == raw
        assert delivery.headers["x-death-reason"].startswith(reason), delivery.headers
        assert delivery.headers[ATTEMPT_HEADER] == 1
        assert delivery.headers["x-original-routing-key"] == queue
        assert delivery.properties.delivery_mode == 2
    assert broker.message_count(queue) == 0


def test_rejected_by_the_handler_goes_to_the_dlq_without_retries(broker: Broker) -> None:
    handler = Handler(failures=99, error=RejectMessage)
    message = envelope()
    with running_consumer(broker, "inventory", {"order.created": handler}) as consumer:
        broker.publish_event("order.created", message.to_json().encode(), message_id=message.id)
        wait_for(lambda: consumer.handled == 1)
        [dead] = broker.wait_for_messages(broker.names.dead_letter_queue("inventory"), 1)
    assert handler.attempts == [message.id]
    assert dead.headers["x-death-reason"] == "rejected: flaky failure 1"
    assert dead.headers["x-original-exchange"] == broker.names.exchange("orders")
    assert dead.headers["x-original-routing-key"] == "order.created"
    assert _effects() == 0 and InboxMessage.objects.count() == 0


def test_a_failing_handler_is_retried_through_the_retry_queues_then_applied(
    broker: Broker,
) -> None:
    handler = Handler(failures=2)
    message = envelope()
    with running_consumer(broker, "inventory", {"order.created": handler}) as consumer:
        broker.publish_event("order.created", message.to_json().encode(), message_id=message.id)
        wait_for(lambda: _effects() == 1)
        wait_for(lambda: consumer.handled == 3)
    assert handler.attempts == [message.id] * 3
    assert InboxMessage.objects.count() == 1
    assert broker.message_count(broker.names.dead_letter_queue("inventory")) == 0
    for delay in (50, 100):
        assert broker.message_count(broker.names.retry_queue("inventory", delay)) == 0


def test_a_handler_that_keeps_failing_is_dead_lettered_with_its_attempt_count(
    broker: Broker,
) -> None:
    handler = Handler(failures=99)
    message = envelope()
    other = envelope()
    with running_consumer(broker, "inventory", {"order.created": handler}) as consumer:
        broker.publish_event("order.created", message.to_json().encode(), message_id=message.id)
        [dead] = broker.wait_for_messages(broker.names.dead_letter_queue("inventory"), 1)
        handler.failures = 0  # later messages succeed: the consumer was never stuck
        broker.publish_event("order.created", other.to_json().encode(), message_id=other.id)
        wait_for(lambda: consumer.handled == 4)
    assert handler.attempts == [message.id] * 3 + [other.id]
    assert dead.properties.message_id == message.id
    assert dead.body == message.to_json().encode()
    assert dead.headers[ATTEMPT_HEADER] == 3
    reason = dead.headers["x-death-reason"]
    assert reason.startswith("failed 3 times: RuntimeError: flaky failure 3"), reason
    assert "flaky failure 2" in dead.headers["x-last-error"]
    # Each failed attempt rolled back its effect and inbox row; only `other` left one.
    assert _effects() == 1
    inbox = InboxMessage.objects.values_list("message_id", flat=True)
    assert [str(message_id) for message_id in inbox] == [other.id]


def test_the_consumer_declares_its_layout_and_consumes_what_was_queued_before(
    broker: Broker,
) -> None:
    broker.delete_everything()
    broker.declare_exchanges()  # its publishers' exchanges exist; none of its queues do
    handler = Handler()
    messages = [envelope() for _ in range(5)]
    with running_consumer(broker, "inventory", {"order.created": handler}, prefetch=2) as consumer:
        wait_for(lambda: broker.consumers(broker.names.queue("inventory")) == 1)
        # Its own queue (now consumed), retry queues and dead-letter queue; no other service's.
        assert broker.queue_exists(broker.names.dead_letter_queue("inventory"))
        for delay in RETRY_DELAYS_MS:
            assert broker.queue_exists(broker.names.retry_queue("inventory", delay))
        for other in ("orders", "user-notification"):
            assert not broker.queue_exists(broker.names.queue(other))
            assert not broker.queue_exists(broker.names.dead_letter_queue(other))
        for message in messages:
            broker.publish_event("order.created", message.to_json().encode())
        wait_for(lambda: consumer.handled == 5)
    assert sorted(handler.attempts) == sorted(m.id for m in messages)
    assert _effects() == 5


def test_copies_are_published_on_a_confirming_channel(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original_confirm = BlockingChannel.confirm_delivery
    original_consume = BlockingChannel.basic_consume

    def confirm_delivery(self: BlockingChannel) -> None:
        calls.append("confirm_delivery")
        original_confirm(self)

    def basic_consume(self: BlockingChannel, *args: Any, **kwargs: Any) -> str:
        calls.append("basic_consume")
        return original_consume(self, *args, **kwargs)

    monkeypatch.setattr(BlockingChannel, "confirm_delivery", confirm_delivery)
    monkeypatch.setattr(BlockingChannel, "basic_consume", basic_consume)
    with running_consumer(broker, "inventory", {}) as consumer:
        broker.publish_to_queue(broker.names.queue("inventory"), b"nope", message_id="x")
        wait_for(lambda: consumer.handled == 1)
    assert calls == ["confirm_delivery", "basic_consume"]
    assert broker.message_count(broker.names.dead_letter_queue("inventory")) == 1


def test_the_consumer_comes_back_when_its_queue_is_deleted(broker: Broker) -> None:
    handler = Handler()
    queue = broker.names.queue("inventory")
    message = envelope()
    with running_consumer(broker, "inventory", {"order.created": handler}) as consumer:
        broker.publish_event("order.created", envelope().to_json().encode())
        wait_for(lambda: consumer.handled == 1)
        broker.channel.queue_delete(queue)  # the broker cancels the consumer
        # Declared and bound again, and consumed from, after the consumer reconnected.
        wait_for(lambda: broker.consumers(queue) == 1, timeout=5)
        broker.publish_event("order.created", message.to_json().encode())
        wait_for(lambda: consumer.handled == 2, timeout=5)
    assert handler.attempts[-1] == message.id


def test_a_backlog_is_applied_in_batches_and_acked_with_one_ack_per_batch(
    broker: Broker,
) -> None:
    transactions: list[int] = []
    handler = in_transactions(transactions, Handler())
    messages = [envelope() for _ in range(40)]
    for message in messages:
        broker.publish_event("order.created", message.to_json().encode())
    with running_consumer(broker, "inventory", {"order.created": handler}, prefetch=10) as consumer:
        wait_for(lambda: consumer.handled == 40)
    assert _effects() == 40
    assert InboxMessage.objects.count() == 40
    # queued before the consumer started: it took them ten at a time, one transaction each
    assert len(set(transactions)) < 40
    assert max(transactions.count(t) for t in set(transactions)) > 1
    assert broker.message_count(broker.names.queue("inventory")) == 0  # every one acked


def test_with_a_gather_window_a_trickle_of_deliveries_is_applied_in_one_transaction(
    broker: Broker,
) -> None:
    transactions: list[int] = []
    handler = in_transactions(transactions, Handler())
    with running_consumer(
        broker, "inventory", {"order.created": handler}, prefetch=10, gather_seconds=1.5
    ) as consumer:
        wait_for(lambda: broker.consumers(broker.names.queue("inventory")) == 1)
        for _ in range(5):  # one at a time, each well after the one before
            broker.publish_event("order.created", envelope().to_json().encode())
            time.sleep(0.1)
        wait_for(lambda: consumer.handled == 5)
        # the prefetch ends a gather early: ten more arrive at once, applied without waiting
        started = time.monotonic()
        for _ in range(10):
            broker.publish_event("order.created", envelope().to_json().encode())
        wait_for(lambda: consumer.handled == 15)
        took = time.monotonic() - started
    assert len(set(transactions[:5])) == 1  # the trickle: one transaction
    assert len(set(transactions)) <= 3
    assert took < 1.5, took
    assert _effects() == 15
    assert broker.message_count(broker.names.queue("inventory")) == 0


def test_a_busy_consumer_gathers_for_its_busy_window_and_an_idle_one_does_not(
    broker: Broker,
) -> None:
    transactions: list[int] = []
    release = threading.Event()

    def hold_the_first(envelope: Envelope) -> None:
        if len(transactions) == 1:
            release.wait(5)

    handler = in_transactions(transactions, hold_the_first)
    with running_consumer(
        broker, "inventory", {"order.created": handler}, prefetch=10, busy_gather_seconds=1.0
    ) as consumer:
        wait_for(lambda: broker.consumers(broker.names.queue("inventory")) == 1)
        broker.publish_event("order.created", envelope().to_json().encode())
        wait_for(lambda: len(transactions) == 1)  # applied at once, then held in its handler
        for _ in range(2):  # these queue up behind it
            broker.publish_event("order.created", envelope().to_json().encode())
        time.sleep(0.3)
        release.set()
        wait_for(lambda: consumer.handled == 3)
        # Busy now (its last batch held two): the next delivery, within the window of that
        # batch's end, waits the window for more, and the one after it joins its batch.
        broker.publish_event("order.created", envelope().to_json().encode())
        time.sleep(0.3)
        broker.publish_event("order.created", envelope().to_json().encode())
        wait_for(lambda: consumer.handled == 5)
        time.sleep(1.5)  # idle for longer than the window: the next message is not held
        started = time.monotonic()
        broker.publish_event("order.created", envelope().to_json().encode())
        wait_for(lambda: consumer.handled == 6)
        took = time.monotonic() - started
    assert transactions[1] == transactions[2]  # the two that queued: one batch
    assert transactions[3] == transactions[4]  # gathered while busy
    assert len(set(transactions)) == 4
    assert took < 0.5, took
    assert broker.message_count(broker.names.queue("inventory")) == 0


def test_without_a_gather_window_a_trickle_is_applied_as_it_comes(broker: Broker) -> None:
    transactions: list[int] = []
    handler = in_transactions(transactions, lambda envelope: None)
    with running_consumer(broker, "inventory", {"order.created": handler}) as consumer:
        wait_for(lambda: broker.consumers(broker.names.queue("inventory")) == 1)
        for count in range(1, 4):
            broker.publish_event("order.created", envelope().to_json().encode())

            def applied(count: int = count) -> bool:
                return consumer.handled == count

            wait_for(applied)
    assert len(set(transactions)) == 3
