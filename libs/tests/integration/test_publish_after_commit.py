"""Events published by their writer right after the commit, against the real PostgreSQL and
RabbitMQ; the relay only for what the writer left."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from messaging import after_commit, crash_points, sending
from messaging.envelope import Envelope
from messaging.models import InboxMessage, OutboxMessage
from messaging.outbox import collecting, publish_event
from messaging.publisher import CONFIRM_TIMEOUT_SECONDS
from messaging.relay import OutboxRelay
from tests.factories import order_created, reserve
from tests.integration.conftest import (
    LIBS,
    RABBITMQCTL,
    Broker,
    close_connections_named,
    running,
    running_consumer,
    wait_for,
    worker_env,
    write_orders,
)

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def orders_writer(settings: Any, broker: Broker) -> Iterator[None]:
    settings.MESSAGING_SERVICE = "orders"
    settings.MESSAGING_PREFIX = broker.prefix
    settings.MESSAGING_PUBLISH_AFTER_COMMIT = True
    broker.declare()  # provisioned before any process starts, as declare_topology does
    after_commit.close_connection()  # a connection of this thread's own, opened on first use
    yield
    after_commit.close_connection()


def _sent(message_id: str) -> bool:
    return OutboxMessage.objects.get(message_id=message_id).sent_at is not None


def _unsent() -> set[str]:
    return {
        str(m)
        for m in OutboxMessage.objects.filter(sent_at__isnull=True).values_list(
            "message_id", flat=True
        )
    }


def _queued(broker: Broker) -> list[str]:
    """Ids of the messages in inventory's queue, taken out of it."""
    return [str(d.properties.message_id) for d in broker.drain(broker.names.queue("inventory"))]


def test_the_writer_publishes_its_events_right_after_the_commit(broker: Broker) -> None:
    with CaptureQueriesContext(connection) as queries:
        ids = write_orders(3)
    # No relay runs: the writer published the three, with one confirm wait and one mark.
    assert _unsent() == set()
    received = broker.wait_for_messages(broker.names.queue("inventory"), 3)
    assert [d.properties.message_id for d in received] == ids
    for delivery in received:
        props = delivery.properties
        assert props.delivery_mode == 2
        assert props.content_type == "application/json"
        assert props.type == "order.created"
        assert props.app_id == "orders"
        assert props.user_id == "guest"  # the broker checks it against the connection's account
        assert delivery.method.exchange == broker.names.exchange("orders")
    statements = [q["sql"] for q in queries]
    marks = [sql for sql in statements if sql.startswith("UPDATE")]
    assert len(marks) == 1, statements
    # The mark is one statement after the events' commit, a transaction of its own that does
    # not wait for the WAL flush (test_sending_marks.py); the events' own commit does wait.
    assert sending.UNFLUSHED_COMMIT in marks[0]
    assert statements.index("COMMIT") < statements.index(marks[0])
    assert sum(sql == "COMMIT" for sql in statements) == 1, statements
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"


def test_events_written_together_go_out_after_the_commit_in_publish_order(
    broker: Broker,
) -> None:
    with transaction.atomic(), collecting():
        ids = [publish_event("order.created", order_created(), correlation_id="c").id]
        with pytest.raises(RuntimeError), transaction.atomic():
            publish_event("order.created", order_created(), correlation_id="rolled-back")
            raise RuntimeError
        ids += [publish_event("order.created", order_created(), correlation_id="c").id]
        ids += [publish_event("order.created", order_created(), correlation_id="c").id]
    assert _unsent() == set()
    assert [
        str(m) for m in OutboxMessage.objects.order_by("id").values_list("message_id", flat=True)
    ] == ids
    received = broker.wait_for_messages(broker.names.queue("inventory"), 3)
    assert [d.properties.message_id for d in received] == ids
    assert broker.message_count(broker.names.queue("inventory")) == 0


def test_only_events_that_committed_are_published(broker: Broker) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        publish_event("order.created", order_created(), correlation_id="rolled-back")
        raise RuntimeError
    with transaction.atomic():
        with transaction.atomic():
            first = publish_event("order.created", order_created(), correlation_id="kept-1")
        with pytest.raises(RuntimeError), transaction.atomic():
            publish_event("order.created", order_created(), correlation_id="dropped")
            raise RuntimeError
        second = publish_event("order.created", order_created(), correlation_id="kept-2")
        with pytest.raises(RuntimeError), transaction.atomic():
            publish_event("order.created", order_created(), correlation_id="dropped-too")
            raise RuntimeError
    assert OutboxMessage.objects.count() == 2 and _unsent() == set()
    received = broker.wait_for_messages(broker.names.queue("inventory"), 2)
    assert [d.properties.message_id for d in received] == [first.id, second.id]
    time.sleep(0.2)
    assert _queued(broker) == []


def test_a_refused_event_stays_unsent_with_the_error_for_the_relay(broker: Broker) -> None:
    for queue, events in (("inventory", "order.created"), ("user-notification", "order.created")):
        broker.channel.queue_unbind(
            broker.names.queue(queue), broker.names.exchange("orders"), events
        )
    [message_id] = write_orders(1)
    row = OutboxMessage.objects.get(message_id=message_id)
    assert row.sent_at is None
    assert row.attempts == 1
    assert row.last_error.startswith("UnroutableError")
    broker.declare()  # its consumer declares its bindings again
    relay = OutboxRelay(broker.config("orders", relay_grace_seconds=0.0))
    with running(relay):
        wait_for(lambda: _sent(message_id))
    assert _queued(broker) == [message_id]


def test_with_the_broker_down_the_commit_returns_at_once_and_the_relay_sends_later(
    broker: Broker, settings: Any
) -> None:
    settings.MESSAGING_BROKER_URL = "amqp://guest:guest@127.0.0.1:1/%2F"  # refused
    started = time.monotonic()
    first = write_orders(1)
    assert time.monotonic() - started < 0.5
    # Backing off: the next transactions do not even try.
    started = time.monotonic()
    second = write_orders(2)
    assert time.monotonic() - started < 0.2
    assert _unsent() == {*first, *second}
    relay = OutboxRelay(broker.config("orders", relay_grace_seconds=0.0))
    with running(relay):
        wait_for(lambda: not _unsent())
    assert sorted(_queued(broker)) == sorted([*first, *second])


def test_a_broker_that_never_answers_delays_the_commit_by_a_second_at_most(
    settings: Any,
) -> None:
    with socket.socket() as silent:  # accepts connections, never speaks AMQP
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        settings.MESSAGING_BROKER_URL = f"amqp://guest:guest@127.0.0.1:{port}/%2F"
        started = time.monotonic()
        ids = write_orders(1)
        waited = time.monotonic() - started
    print("waited", waited)
    assert waited < after_commit.TIMEOUT_SECONDS + 1.0, waited
    assert _unsent() == set(ids)


@pytest.mark.skipif(RABBITMQCTL is None, reason="rabbitmqctl is needed to drop connections")
def test_a_connection_the_broker_dropped_is_reopened_once(broker: Broker) -> None:
    first = write_orders(1)
    assert close_connections_named(f"{broker.prefix}orders:writer") == 1
    second = write_orders(1)
    assert _unsent() == set()
    assert _queued(broker) == [*first, *second]


def test_a_connection_idle_longer_than_the_heartbeat_is_replaced_before_use(
    broker: Broker, settings: Any
) -> None:
    settings.MESSAGING_HEARTBEAT = 1
    write_orders(1)
    used = after_commit._link.broker
    time.sleep(1.2)
    write_orders(1)
    assert after_commit._link.broker is not used
    assert used is not None and not used.is_open
    assert _unsent() == set()
    assert len(_queued(broker)) == 2


def test_each_thread_publishes_on_a_connection_of_its_own(broker: Broker) -> None:
    write_orders(1)
    mine = after_commit._link.broker
    theirs: list[Any] = []

    def other_thread() -> None:
        try:
            write_orders(1)
            theirs.append(after_commit._link.broker)
            after_commit.close_connection()
        finally:
            connection.close()

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join(10)
    assert theirs and theirs[0] is not None and theirs[0] is not mine
    assert _unsent() == set()


def test_a_consumer_publishes_its_batch_events_on_one_publish_connection_of_its_own(
    broker: Broker, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.MESSAGING_SERVICE = "inventory"
    opened: list[Any] = []
    real = after_commit.open_connection

    def counted(config: Any, confirm_timeout: float) -> Any:
        opened.append(real(config, confirm_timeout))
        return opened[-1]

    monkeypatch.setattr(after_commit, "open_connection", counted)
    with running_consumer(broker, "inventory", {"order.created": reserve}) as consumer:
        for _ in range(5):
            data = order_created()
            message = Envelope.new("order.created", data, source="orders", correlation_id="c")
            broker.publish_event("order.created", message.to_json().encode())
            time.sleep(0.05)  # several batches, not one
        wait_for(lambda: consumer.handled == 5)
        received = broker.wait_for_messages(broker.names.queue("orders"), 5)
        assert [c.is_open for c in opened] == [True]  # one for every batch, kept open
    assert {d.properties.type for d in received} == {"stock.reserved"}
    assert OutboxMessage.objects.count() == 5
    # Marked by the consumer itself, which defers the marks until it idles or, as here, stops
    # (no relay runs here).
    assert _unsent() == set()
    assert not opened[0].is_open  # closed when the consumer stopped
    # When it waits for its confirms (idle, stopping), it waits as long as the relay would.
    assert opened[0]._confirm_timeout == CONFIRM_TIMEOUT_SECONDS


def test_a_row_published_but_not_marked_goes_again_and_the_inbox_absorbs_it(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def dies_before_marking(point: str) -> None:
        if point == crash_points.AFTER_PUBLISH:
            raise KeyboardInterrupt  # never caught on the way: as if the process ended here

    monkeypatch.setattr(crash_points, "reach", dies_before_marking)
    with pytest.raises(KeyboardInterrupt):
        write_orders(1)
    monkeypatch.undo()
    [message_id] = _unsent()
    relay, applied = _relay_then_consume(broker, message_id)
    assert relay.published == 1
    assert applied == [message_id]  # two deliveries, one effect


CRASHING_WRITER = r"""
import django
django.setup()
from django.conf import settings
from django.db import transaction
from messaging.outbox import collecting, publish_event
from messaging.publisher import CONFIRM_TIMEOUT_SECONDS
from tests.factories import order_created

settings.MESSAGING_SERVICE = "orders"
settings.MESSAGING_PUBLISH_AFTER_COMMIT = True
data = order_created()
with transaction.atomic():
    envelope = publish_event("order.created", data, correlation_id=data["order_id"])
print("committed and carried on", envelope.id, flush=True)
"""


@pytest.mark.parametrize("point", crash_points.POINTS)
def test_kill_9_at_a_crash_point_loses_nothing_and_applies_once(broker: Broker, point: str) -> None:
    writer = _python(CRASHING_WRITER, broker.prefix, point)
    assert writer.returncode == -9, writer.stdout + writer.stderr
    assert f"crash point {point} reached" in writer.stdout + writer.stderr
    [message_id] = _unsent()  # committed, never marked
    inventory = broker.names.queue("inventory")
    assert broker.message_count(inventory) == (0 if point == crash_points.AFTER_COMMIT else 1)
    _, applied = _relay_then_consume(broker, message_id)
    assert applied == [message_id]


def test_an_unknown_crash_point_fails_at_start() -> None:
    result = _python("import messaging.crash_points", "unused.", "after-lunch")
    assert result.returncode == 1
    assert "MESSAGING_CRASH_POINT='after-lunch'" in result.stderr


def _python(code: str, prefix: str, crash_point: str) -> subprocess.CompletedProcess[str]:
    """``code`` run by a process of its own, with this test's database and broker prefix."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=LIBS,
        env=worker_env(prefix, **{crash_points.ENV: crash_point}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _relay_then_consume(broker: Broker, message_id: str) -> tuple[OutboxRelay, list[str]]:
    """A relay until nothing is unsent, and inventory's consumer until ``message_id`` has been
    applied and a moment more for any copy of it; the relay, and the ids the handler saw."""
    applied: list[str] = []
    relay = OutboxRelay(broker.config("orders", relay_grace_seconds=0.0))
    with running_consumer(broker, "inventory", {"order.created": lambda e: applied.append(e.id)}):
        with running(relay):
            wait_for(lambda: not _unsent())
        wait_for(lambda: InboxMessage.objects.filter(message_id=message_id).exists())
        time.sleep(0.3)
    return relay, applied
