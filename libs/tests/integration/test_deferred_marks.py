"""Sent marks left to a later statement of the same thread (``after_commit.defer_marks``),
against the real PostgreSQL and RabbitMQ: carried by the next statement that carries marks,
written alone when the thread idles or they grow old, never lost by a rollback."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from messaging import after_commit
from messaging.consumer import record_many_in_inbox
from messaging.envelope import Envelope
from messaging.models import OutboxMessage
from tests.factories import envelope, order_created, reserve
from tests.integration.conftest import (
    Broker,
    queued_ids,
    running_consumer,
    unsent_ids,
    wait_for,
    write_orders,
)

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _writer(deferring_writer: None) -> None:
    """Every test here writes orders' events, their marks deferred (before a class's own
    fixtures, which may change the service)."""


def test_published_at_once_marked_by_the_next_statement_that_carries_marks(
    broker: Broker,
) -> None:
    with CaptureQueriesContext(connection) as queries:
        first = write_orders(2)
    # Published and confirmed right after the commit, but no statement of its own marked them.
    assert queued_ids(broker, 2) == first
    assert not any("sent_at" in q["sql"] for q in queries.captured_queries)
    assert unsent_ids() == set(first) and after_commit.marks_waiting()

    with transaction.atomic():
        record_many_in_inbox("inventory", [envelope()])
        assert unsent_ids() == set()  # marked by the inbox insert...
        assert after_commit.marks_waiting()  # ...but waiting until that commits
    assert not after_commit.marks_waiting()
    assert unsent_ids() == set()


def test_marks_carried_by_a_transaction_that_rolls_back_still_wait(broker: Broker) -> None:
    [message_id] = write_orders(1)
    with pytest.raises(RuntimeError), transaction.atomic():
        record_many_in_inbox("inventory", [envelope()])
        raise RuntimeError("the batch failed")
    assert unsent_ids() == {message_id} and after_commit.marks_waiting()
    after_commit.flush_marks()  # what a thread does when it idles
    assert unsent_ids() == set() and not after_commit.marks_waiting()


def test_marks_waiting_too_long_are_written_with_the_next_events(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write_orders(1)
    assert unsent_ids() == set(first)
    monkeypatch.setattr(after_commit, "MARK_AGE_LIMIT_SECONDS", 0.0)
    assert after_commit.marks_overdue()
    second = write_orders(1)
    assert queued_ids(broker, 2) == first + second
    assert unsent_ids() == set() and not after_commit.marks_waiting()


def test_without_deferring_the_writer_marks_at_once(broker: Broker) -> None:
    after_commit.defer_marks(False)
    ids = write_orders(2)
    assert queued_ids(broker, 2) == ids
    assert unsent_ids() == set() and not after_commit.marks_waiting()


class TestConsumer:
    """A consumer defers the marks of what its batches publish to its next batch."""

    @pytest.fixture(autouse=True)
    def _inventory(self, settings: Any) -> None:
        settings.MESSAGING_SERVICE = "inventory"

    def _send(self, broker: Broker) -> str:
        """An order.created to inventory; its correlation id, which the reply carries."""
        data = order_created()
        message = Envelope.new(
            "order.created", data, source="orders", correlation_id=data["order_id"]
        )
        broker.publish_event("order.created", message.to_json().encode())
        return str(data["order_id"])

    def _reply_to(self, correlation_id: str) -> OutboxMessage:
        return OutboxMessage.objects.get(correlation_id=correlation_id)

    def test_the_next_batch_carries_the_marks_of_the_one_before(
        self, broker: Broker, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(after_commit, "flush_marks", lambda: None)  # none while idle
        with running_consumer(broker, "inventory", {"order.created": reserve}) as consumer:
            first = self._send(broker)
            wait_for(lambda: consumer.handled == 1)
            broker.wait_for_messages(broker.names.queue("orders"), 1)
            assert self._reply_to(first).sent_at is None  # published, its mark waits
            second = self._send(broker)
            wait_for(lambda: consumer.handled == 2)
            # The second batch's inbox insert marked the first's reply.
            assert self._reply_to(first).sent_at is not None
            assert self._reply_to(second).sent_at is None
            consumer.stop_event.set()

    def test_an_idle_consumer_marks_what_waits_at_once(self, broker: Broker) -> None:
        with running_consumer(broker, "inventory", {"order.created": reserve}) as consumer:
            sent = [self._send(broker) for _ in range(3)]
            wait_for(lambda: consumer.handled == 3)
            # Well inside the relay's grace (no relay runs here anyway).
            wait_for(lambda: unsent_ids() == set(), timeout=1.0)
        assert len(broker.wait_for_messages(broker.names.queue("orders"), 3)) == 3
        assert {row.correlation_id for row in OutboxMessage.objects.all()} == set(sent)
