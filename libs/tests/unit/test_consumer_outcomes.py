"""What the consumer does with each outcome, without a broker or a database.

A fake channel records the calls: the copy to a retry or dead-letter queue must be published
(on the confirming channel) before the delivery is acked, and a database outage must never
ack anything.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import OperationalError
from pika.spec import Basic, BasicProperties

from messaging.config import MessagingConfig
from messaging.consumer import (
    ATTEMPT_HEADER,
    Consumer,
    Item,
    MessageProcessor,
    Outcome,
    attempt_of,
)
from tests.factories import body, envelope, raw_envelope


def _config() -> MessagingConfig:
    return MessagingConfig(
        service="inventory",
        broker_url="amqp://guest:guest@127.0.0.1:1/",
        prefix="unit.",
        handlers_path=None,
        prefetch=5,
        retry_delays_ms=(50, 100, 200),
        heartbeat=30,
    )


@dataclass
class FakeChannel:
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def basic_publish(self, **kwargs: Any) -> None:
        self.calls.append(("publish", kwargs))

    def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self.calls.append(("ack", delivery_tag))


@dataclass
class FakeBroker:
    slept: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        time.sleep(seconds)


class ScriptedProcessor(MessageProcessor):
    """Answers each batch (of one delivery) with the next scripted outcome, or raises it."""

    def __init__(self, *answers: Outcome | Exception) -> None:
        super().__init__("inventory", {}, max_attempts=4)
        self.answers = list(answers)

    def process_batch(self, items: Sequence[Item]) -> list[Outcome]:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return [answer]


def _deliver(
    consumer: Consumer, outcome: Outcome, headers: dict[str, Any] | None = None
) -> list[tuple[str, Any]]:
    channel = FakeChannel()
    consumer.processor = ScriptedProcessor(outcome)
    properties = BasicProperties(
        message_id="m-1", correlation_id="c-1", type="order.created", headers=headers
    )
    method = Basic.Deliver(
        delivery_tag=9, exchange="unit.orders.events", routing_key="order.created"
    )
    consumer._on_message(channel, method, properties, b"{}")
    consumer.process_pending()
    return channel.calls


def test_applied_message_is_acked_without_a_copy() -> None:
    consumer = Consumer({}, _config())
    assert _deliver(consumer, Outcome("ack")) == [("ack", 9)]
    assert consumer.handled == 1


@pytest.mark.parametrize(("attempt", "queue"), [(1, 50), (2, 100), (3, 200)])
def test_retry_is_copied_to_the_queue_for_its_attempt_before_the_ack(
    attempt: int, queue: int
) -> None:
    consumer = Consumer({}, _config())
    calls = _deliver(consumer, Outcome("retry", "boom", attempt), {ATTEMPT_HEADER: attempt})
    assert [name for name, _ in calls] == ["publish", "ack"]
    publish = calls[0][1]
    assert publish["exchange"] == "unit.inventory.retry"  # its own, never the default exchange
    assert publish["routing_key"] == f"unit.inventory.retry.{queue}ms"
    assert publish["mandatory"] is True
    props: BasicProperties = publish["properties"]
    assert props.delivery_mode == 2
    assert props.message_id == "m-1" and props.correlation_id == "c-1"
    assert props.headers[ATTEMPT_HEADER] == attempt + 1
    assert props.headers["x-last-error"] == "boom"


def test_dead_letter_copy_says_why_and_where_from() -> None:
    consumer = Consumer({}, _config())
    calls = _deliver(consumer, Outcome("dead", "malformed: body is not JSON", 4), {"keep": "me"})
    assert [name for name, _ in calls] == ["publish", "ack"]
    publish = calls[0][1]
    assert publish["exchange"] == "unit.inventory.dead"
    assert publish["routing_key"] == "unit.inventory.dlq"
    headers = publish["properties"].headers
    assert headers["x-death-reason"] == "malformed: body is not JSON"
    assert headers["x-original-exchange"] == "unit.orders.events"
    assert headers["x-original-routing-key"] == "order.created"
    assert headers["keep"] == "me"
    assert "x-dead-lettered-at" in headers


@pytest.mark.parametrize(
    ("headers", "attempt"),
    [
        (None, 1),
        ({}, 1),
        ({ATTEMPT_HEADER: 3}, 3),
        ({ATTEMPT_HEADER: "2"}, 2),
        ({ATTEMPT_HEADER: "lots"}, 1),
        ({ATTEMPT_HEADER: None}, 1),
        ({ATTEMPT_HEADER: -5}, 1),
        ({ATTEMPT_HEADER: b"\x00"}, 1),
    ],
)
def test_attempt_header_never_crashes_the_consumer(
    headers: dict[str, Any] | None, attempt: int
) -> None:
    assert attempt_of(BasicProperties(headers=headers)) == attempt


def test_database_outage_waits_without_acking_then_carries_on() -> None:
    consumer = Consumer({}, _config())
    broker = FakeBroker()
    consumer.broker = broker
    consumer.processor = ScriptedProcessor(
        OperationalError("down"), OperationalError("down"), Outcome("ack")
    )
    channel = FakeChannel()
    method = Basic.Deliver(delivery_tag=3, exchange="", routing_key="q")
    consumer._on_message(channel, method, BasicProperties(), b"{}")
    consumer.process_pending()
    assert channel.calls == [("ack", 3)]
    assert 0.1 < sum(broker.slept) < 1.5  # two back-off pauses: about 0.2 s then 0.4 s


def test_stopping_during_a_database_outage_leaves_the_delivery_unacked() -> None:
    consumer = Consumer({}, _config())
    consumer.broker = FakeBroker()

    class StopsThenFails(MessageProcessor):
        def process_batch(self, items: Sequence[Item]) -> list[Outcome]:
            consumer.stop_event.set()  # SIGTERM arrives while the database is down
            raise OperationalError("down")

    consumer.processor = StopsThenFails("inventory", {}, 3)
    channel = FakeChannel()
    method = Basic.Deliver(delivery_tag=3, exchange="", routing_key="q")
    consumer._on_message(channel, method, BasicProperties(), b"{}")
    consumer.process_pending()
    assert channel.calls == []


def test_processor_dead_letters_malformed_and_unhandled_without_the_database() -> None:
    # No database access is allowed in unit tests: these outcomes are decided before it.
    processor = MessageProcessor("inventory", {"order.cancelled": lambda e: None}, 3)
    bad = processor.process(b"{oops", 2)
    assert (bad.action, bad.attempt) == ("dead", 2)
    assert bad.reason.startswith("malformed: body is not JSON")
    schema = raw_envelope()
    schema["data"]["user_id"] = "seven"
    invalid = processor.process(body(schema))
    assert invalid.action == "dead"
    assert "malformed: order.created v1 payload invalid at user_id" in invalid.reason
    unknown = processor.process(body(raw_envelope(type="order.teleported")))
    assert unknown.reason.startswith("malformed: unknown event type 'order.teleported'")
    unhandled = processor.process(envelope().to_json().encode())
    assert unhandled == Outcome("dead", "no handler for 'order.created' in inventory", 1)


def test_consumer_needs_handlers() -> None:
    with pytest.raises(RuntimeError, match="MESSAGING_HANDLERS is not set"):
        Consumer(None, _config())


# Gathering while busy: how long the consumer goes on collecting after a batch's first delivery.


class AckingProcessor(MessageProcessor):
    """Acks every message of every batch, noting each batch's size."""

    def __init__(self) -> None:
        super().__init__("inventory", {}, max_attempts=4)
        self.batches: list[int] = []

    def process_batch(self, items: Sequence[Item]) -> list[Outcome]:
        self.batches.append(len(items))
        return [Outcome("ack")] * len(items)


def _busy_consumer(busy_ms: int, gather_ms: int = 0) -> Consumer:
    config = dataclasses.replace(
        _config(), busy_gather_seconds=busy_ms / 1000, gather_seconds=gather_ms / 1000
    )
    consumer = Consumer({}, config)
    consumer.processor = AckingProcessor()
    return consumer


def _hand_in(consumer: Consumer, count: int) -> None:
    """``count`` deliveries handed in by pika, not applied yet."""
    for tag in range(1, count + 1):
        consumer._on_message(
            FakeChannel(),
            Basic.Deliver(delivery_tag=tag, exchange="unit.orders.events"),
            BasicProperties(message_id=f"m-{tag}", type="order.created"),
            b"{}",
        )


def _applied_together(consumer: Consumer, count: int) -> None:
    _hand_in(consumer, count)
    consumer.process_pending()


def test_a_message_to_an_idle_consumer_is_applied_at_once() -> None:
    consumer = _busy_consumer(busy_ms=50)
    _hand_in(consumer, 1)
    assert consumer.gather_window() == 0.0  # nothing applied before: not busy


@pytest.mark.parametrize(
    ("busy_ms", "last_batch", "pause", "window"),
    [
        # right after its end, but the last batch held one message: not busy
        (50, 1, 0.0, 0.0),
        # a batch of several, the next delivery within the window of its end: busy
        (50, 3, 0.0, 0.05),
        # a batch of several, but the next delivery later than the window: idle again
        (20, 3, 0.03, 0.0),
        # busy, but without a busy window: no wait
        (0, 3, 0.0, 0.0),
    ],
)
def test_the_window_after_a_batch(
    busy_ms: int, last_batch: int, pause: float, window: float
) -> None:
    consumer = _busy_consumer(busy_ms=busy_ms)
    _applied_together(consumer, last_batch)
    time.sleep(pause)
    _hand_in(consumer, 1)
    assert consumer.gather_window() == window


def test_a_gather_window_applies_whatever_the_load() -> None:
    consumer = _busy_consumer(busy_ms=4, gather_ms=100)
    _hand_in(consumer, 1)
    assert consumer.gather_window() == 0.1
