"""A consumer's events sent right after its commit, their confirms read later
(``after_commit.pipeline_confirms``), against the real PostgreSQL and RabbitMQ: the thread goes
on before they come, the next statement that carries marks (or the next publish, or an idle
thread) reads them, and whatever does not come is the relay's."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction

from messaging import after_commit
from messaging.consumer import record_many_in_inbox
from messaging.envelope import Envelope
from messaging.models import OutboxMessage
from messaging.publish_connection import PublishConnection
from messaging.relay import OutboxRelay
from tests.factories import envelope, order_created, reserve
from tests.integration.conftest import (
    Broker,
    queued_ids,
    running,
    running_consumer,
    unsent_ids,
    wait_for,
    write_orders,
)

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def pipelining_writer(deferring_writer: None) -> Iterator[None]:
    after_commit.pipeline_confirms()
    yield
    after_commit.pipeline_confirms(False)


def _confirms_read() -> bool:
    """Read what came without blocking (as the next statement would): True once none is out."""
    after_commit.settle_in_flight(wait=False)
    return after_commit._link.in_flight is None


def test_the_writer_goes_on_once_sent_and_its_next_statement_marks_them(broker: Broker) -> None:
    first = write_orders(2)
    # Sent at the commit (they reach the queue), their confirms not read yet.
    assert [str(row.message_id) for row in after_commit._link.in_flight or []] == first
    assert queued_ids(broker, 2) == first
    assert after_commit.marks_waiting() and unsent_ids() == set(first)

    wait_for(_confirms_read)
    with transaction.atomic():
        record_many_in_inbox("inventory", [envelope()])
        assert unsent_ids() == set()  # marked by the inbox insert
    assert not after_commit.marks_waiting()


def test_the_next_publish_reads_the_confirms_of_the_one_before(broker: Broker) -> None:
    first = write_orders(1)
    second = write_orders(1)  # waits for the first's confirms before it goes out
    assert [str(row.message_id) for row in after_commit._link.in_flight or []] == second
    assert [str(m) for m in after_commit._link.marks] == first  # confirmed, its mark waits
    assert queued_ids(broker, 2) == [*first, *second]


def test_an_idle_thread_waits_for_its_confirms_then_marks(broker: Broker) -> None:
    ids = write_orders(3)
    assert after_commit._link.in_flight is not None
    after_commit.flush_marks()  # what a consumer does when it idles
    assert after_commit._link.in_flight is None and not after_commit.marks_waiting()
    assert unsent_ids() == set()
    assert queued_ids(broker, 3) == ids


def test_a_refused_event_stays_unsent_with_the_error_for_the_relay(broker: Broker) -> None:
    for queue in ("inventory", "user-notification"):
        broker.channel.queue_unbind(
            broker.names.queue(queue), broker.names.exchange("orders"), "order.created"
        )
    [message_id] = write_orders(1)
    after_commit.flush_marks()
    row = OutboxMessage.objects.get(message_id=message_id)
    assert row.sent_at is None
    assert row.attempts == 1
    assert row.last_error.startswith("UnroutableError")


def test_confirms_lost_with_the_connection_leave_the_rows_to_the_relay(broker: Broker) -> None:
    [message_id] = write_orders(1)
    link = after_commit._link
    assert link.broker is not None and link.in_flight is not None
    link.broker._sock.close()  # the connection breaks before its confirms are read
    after_commit.flush_marks()  # no error: the rows are left unmarked
    assert link.in_flight is None and link.broker is None
    assert unsent_ids() == {message_id}
    relay = OutboxRelay(broker.config("orders", relay_grace_seconds=0.0))
    with running(relay):
        wait_for(lambda: not unsent_ids())
    # Sent at the commit, and again by the relay: two copies, which the inbox absorbs.
    assert queued_ids(broker, 2) == [message_id, message_id]


class TestAConsumer:
    @pytest.fixture(autouse=True)
    def inventory(self, settings: Any) -> None:
        settings.MESSAGING_SERVICE = "inventory"

    def test_acks_its_batch_before_its_events_are_confirmed(
        self, broker: Broker, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        released = threading.Event()
        real_wait, real_now = PublishConnection.wait, PublishConnection.settled_now

        def held_wait(connection: PublishConnection) -> Any:
            released.wait(10)  # the confirms come only once the test releases them
            return real_wait(connection)

        def held_now(connection: PublishConnection) -> Any:
            return real_now(connection) if released.is_set() else None

        monkeypatch.setattr(PublishConnection, "wait", held_wait)
        monkeypatch.setattr(PublishConnection, "settled_now", held_now)
        with running_consumer(broker, "inventory", {"order.created": reserve}) as consumer:
            data = order_created()
            message = Envelope.new("order.created", data, source="orders", correlation_id="c")
            broker.publish_event("order.created", message.to_json().encode())
            # Handled and acked (its reply already in the orders queue) with no confirm read.
            wait_for(lambda: consumer.handled == 1)
            assert not released.is_set()
            assert len(broker.wait_for_messages(broker.names.queue("orders"), 1)) == 1
            assert unsent_ids() == {str(OutboxMessage.objects.get().message_id)}
            released.set()
            wait_for(lambda: unsent_ids() == set())  # read and marked once the consumer idles
