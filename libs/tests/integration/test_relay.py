"""The outbox relay against the real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from datetime import timedelta
from typing import Any

import pika
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from messaging import relay as relay_module
from messaging import sending, topology
from messaging.envelope import Envelope, decode
from messaging.models import OutboxMessage
from messaging.outbox import collecting, publish_event
from messaging.publisher import ConfirmingPublisher, OutgoingMessage
from messaging.relay import OutboxRelay
from tests.factories import order_created
from tests.integration.conftest import Broker, running, wait_for, write_orders

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def orders_service(settings: Any, broker: Broker) -> None:
    settings.MESSAGING_SERVICE = "orders"
    settings.MESSAGING_PREFIX = broker.prefix
    # Provisioned before any worker starts, as `declare_topology` does for the local runner
    # (the relay itself declares only its own exchange).
    broker.declare()


def _unbind_order_created(broker: Broker) -> None:
    """Leave order.created unroutable: unbind it from every queue that consumes it."""
    for service, events in topology.CONSUMES.items():
        if "order.created" in events:
            broker.channel.queue_unbind(
                broker.names.queue(service), broker.names.exchange("orders"), "order.created"
            )


def _unsent() -> int:
    return OutboxMessage.objects.filter(sent_at__isnull=True).count()


def test_relay_sends_events_written_together_in_their_order(broker: Broker) -> None:
    with transaction.atomic(), collecting():
        ids = [
            publish_event("order.created", data, correlation_id=data["order_id"]).id
            for data in (order_created() for _ in range(5))
        ]
    relay = OutboxRelay(broker.config("orders"), batch_size=10)
    channel = ConfirmingPublisher(broker._connection, broker._connection.channel())
    assert relay.relay_batch(channel) == 5
    assert _unsent() == 0
    deliveries = broker.wait_for_messages(broker.names.queue("inventory"), 5)
    assert [d.properties.message_id for d in deliveries] == ids


def test_relay_batch_publishes_persistent_messages_and_marks_them_sent(broker: Broker) -> None:
    ids = write_orders(3)
    relay = OutboxRelay(broker.config("orders"), batch_size=2)
    channel = ConfirmingPublisher(broker._connection, broker._connection.channel())
    assert relay.relay_batch(channel) == 2
    assert _unsent() == 1
    assert relay.relay_batch(channel) == 1
    assert relay.relay_batch(channel) == 0
    assert relay.published == 3
    assert _unsent() == 0

    deliveries = broker.wait_for_messages(broker.names.queue("inventory"), 3)
    assert [d.properties.message_id for d in deliveries] == ids  # outbox order
    for delivery, row in zip(deliveries, OutboxMessage.objects.order_by("id"), strict=True):
        props = delivery.properties
        assert props.delivery_mode == 2
        assert props.content_type == "application/json"
        assert props.type == "order.created"
        assert props.app_id == "orders"
        assert props.correlation_id == row.correlation_id
        assert delivery.method.exchange == broker.names.exchange("orders")
        assert delivery.method.routing_key == "order.created"
        assert decode(delivery.body).id == str(row.message_id)
        assert row.sent_at is not None and row.attempts == 0
    # Bound by event type: only the services that consume order.created received it.
    for service, events in topology.CONSUMES.items():
        if service != "inventory":
            expected = 3 if "order.created" in events else 0
            assert broker.message_count(broker.names.queue(service)) == expected, service


def test_an_unroutable_row_is_kept_unsent_with_the_error(broker: Broker) -> None:
    write_orders(1)
    relay = OutboxRelay(broker.config("orders"))
    relay.stop_event.set()  # skips the pause after a refusal
    _unbind_order_created(broker)
    channel = ConfirmingPublisher(broker._connection, broker._connection.channel())
    assert relay.relay_batch(channel) == 0
    row = OutboxMessage.objects.get()
    assert row.sent_at is None
    assert row.attempts == 1
    assert row.last_error.startswith("UnroutableError")
    # The relay declares nothing on a refusal: the row stays unsent until a queue is bound.
    assert relay.relay_batch(channel) == 0
    row.refresh_from_db()
    assert row.sent_at is None
    assert row.attempts == 2
    assert row.last_error.startswith("UnroutableError")
    # Its consumer declares its bindings again (as on its next start); now the row goes out.
    broker.declare()
    assert relay.relay_batch(channel) == 1
    assert _unsent() == 0
    row.refresh_from_db()
    assert row.sent_at is not None and row.attempts == 2
    assert len(broker.drain(broker.names.queue("inventory"))) == 1


def test_relay_sends_a_row_its_writer_left_after_the_grace_and_not_before(
    broker: Broker, settings: Any
) -> None:
    # As if its writer died between the commit and publishing it.
    settings.MESSAGING_RELAY_GRACE_SECONDS = 1.0
    relay = OutboxRelay(broker.config("orders"))
    assert relay.poll_seconds == 1.0
    with running(relay):
        time.sleep(0.2)  # connected and polling
        [message_id] = write_orders(1)
        written = time.monotonic()
        time.sleep(0.7)
        assert _unsent() == 1  # its writer may still be publishing it
        wait_for(lambda: _unsent() == 0, timeout=5, interval=0.01)
        waited = time.monotonic() - written
    print("relayed after", waited)
    assert 0.9 < waited < 3.0, waited  # the grace, then at most one poll
    assert relay.published == 1
    [delivery] = broker.wait_for_messages(broker.names.queue("inventory"), 1)
    assert delivery.properties.message_id == message_id


def test_an_idle_relay_looks_at_the_outbox_once_per_grace_period(
    broker: Broker, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its broker connection brings it no deliveries: servicing it must not end the wait early.
    settings.MESSAGING_RELAY_GRACE_SECONDS = 1.0
    relay = OutboxRelay(broker.config("orders"))
    looks: list[float] = []
    relay_batch = relay.relay_batch

    def counted(publisher: ConfirmingPublisher) -> int:
        looks.append(time.monotonic())
        return relay_batch(publisher)

    monkeypatch.setattr(relay, "relay_batch", counted)
    with running(relay):
        wait_for(lambda: len(looks) >= 3, timeout=5)
    gaps = [later - earlier for earlier, later in itertools.pairwise(looks)]
    assert all(0.9 < gap < 1.6 for gap in gaps[:2]), gaps


def test_the_claim_skips_rows_younger_than_the_grace(broker: Broker, settings: Any) -> None:
    settings.MESSAGING_RELAY_GRACE_SECONDS = 60.0
    old, fresh = write_orders(2)
    OutboxMessage.objects.filter(message_id=old).update(
        created_at=timezone.now() - timedelta(seconds=61)
    )
    relay = OutboxRelay(broker.config("orders"))
    channel = ConfirmingPublisher(broker._connection, broker._connection.channel())
    assert relay.relay_batch(channel) == 1
    assert relay.relay_batch(channel) == 0
    assert [
        str(m)
        for m in OutboxMessage.objects.filter(sent_at__isnull=True).values_list(
            "message_id", flat=True
        )
    ] == [fresh]
    [delivery] = broker.wait_for_messages(broker.names.queue("inventory"), 1)
    assert delivery.properties.message_id == old


def test_the_claim_reads_the_partial_index_of_unsent_rows(broker: Broker) -> None:
    """Sent rows pile up by the million; the claim must not read them."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {OutboxMessage._meta.db_table} "  # noqa: S608
            "(message_id, exchange, routing_key, body, correlation_id, created_at, sent_at, "
            "attempts, last_error) "
            "SELECT gen_random_uuid(), 'x', 'order.created', '{}', 'c', now(), now(), 0, '' "
            "FROM generate_series(1, 20000)"
        )
        cursor.execute(f"ANALYZE {OutboxMessage._meta.db_table}")
    write_orders(3)
    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN " + relay_module._claim_sql(),
            [relay_module._created_at(timezone.now()), 200],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    print(plan)
    assert "outbox_unsent" in plan, plan
    assert "Seq Scan" not in plan, plan


def test_rows_wait_while_the_broker_is_unreachable_then_go_out(broker: Broker) -> None:
    ids = write_orders(2)
    good = broker.config("orders")
    relay = OutboxRelay(dataclasses.replace(good, broker_url="amqp://guest:guest@127.0.0.1:1/"))
    with running(relay) as thread:
        time.sleep(1.0)
        assert thread.is_alive()
        assert _unsent() == 2
        assert relay.published == 0
        relay.config = good  # the broker "comes back"
        wait_for(lambda: _unsent() == 0, timeout=15)
    assert relay.published == 2
    received = broker.drain(broker.names.queue("inventory"))
    assert sorted(d.properties.message_id for d in received) == sorted(ids)


def test_two_relays_side_by_side_publish_each_row_once(broker: Broker) -> None:
    ids = write_orders(60)
    first = OutboxRelay(broker.config("orders"), batch_size=5)
    second = OutboxRelay(broker.config("orders"), batch_size=5)
    with running(first), running(second):
        wait_for(lambda: _unsent() == 0, timeout=15)
    print("split", first.published, second.published)
    assert first.published + second.published == 60
    received = broker.wait_for_messages(broker.names.queue("inventory"), 60)
    assert sorted(d.properties.message_id for d in received) == sorted(ids)
    assert json.loads(received[0].body)["type"] == "order.created"


def test_a_running_relay_keeps_a_refused_row_until_the_broker_takes_it(broker: Broker) -> None:
    """Proves the relay's channel confirms: without confirms an unroutable row is lost as sent."""
    relay = OutboxRelay(broker.config("orders"))
    _unbind_order_created(broker)
    with running(relay):
        [message_id] = write_orders(1)
        row = wait_for(lambda: OutboxMessage.objects.filter(attempts__gte=1).first())
        assert row.sent_at is None
        assert row.last_error.startswith("UnroutableError")
        # It keeps the row and tries again about every second, declaring nothing meanwhile.
        row = wait_for(lambda: OutboxMessage.objects.filter(attempts__gte=2).first(), timeout=5)
        assert row.sent_at is None
        assert relay.published == 0
        assert broker.message_count(broker.names.queue("inventory")) == 0
        # Once the binding is back (its consumer declares it), the relay publishes it on its own.
        broker.declare()
        wait_for(lambda: _unsent() == 0, timeout=5)
    [delivery] = broker.wait_for_messages(broker.names.queue("inventory"), 1)
    assert delivery.properties.message_id == message_id


def _message(broker: Broker, routing_key: str = "order.created") -> OutgoingMessage:
    data = order_created()
    # the broker routes by routing key only: the body can stay an order.created
    envelope = Envelope.new("order.created", data, source="orders", correlation_id=data["order_id"])
    return OutgoingMessage(
        exchange=broker.names.exchange("orders"),
        routing_key=routing_key,
        body=envelope.to_json().encode(),
        properties=pika.BasicProperties(message_id=envelope.id, delivery_mode=2),
    )


def test_a_batch_goes_out_before_the_one_wait_for_its_confirms(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = broker._connection
    publisher = ConfirmingPublisher(connection, connection.channel())
    waits = []
    original = connection.process_data_events

    def counting(time_limit: float | None = 0) -> None:
        waits.append(time_limit)
        original(time_limit)

    monkeypatch.setattr(connection, "process_data_events", counting)
    messages = [_message(broker) for _ in range(50)]
    settled = publisher.publish_all(messages)
    assert settled.confirmed == list(range(50)) and settled.refused == {}
    # Waiting per message would take at least one I/O loop pass per message.
    assert len(waits) < 10, len(waits)
    received = broker.wait_for_messages(broker.names.queue("inventory"), 50)
    assert [d.properties.message_id for d in received] == [
        m.properties.message_id for m in messages
    ]


def test_an_unroutable_message_is_refused_alone_and_the_rest_are_confirmed(broker: Broker) -> None:
    _unbind_order_created(broker)
    connection = broker._connection
    publisher = ConfirmingPublisher(connection, connection.channel())
    messages = [
        _message(broker, "order.confirmed"),
        _message(broker),
        _message(broker, "order.confirmed"),
    ]
    settled = publisher.publish_all(messages)
    assert settled.confirmed == [0, 2]
    assert list(settled.refused) == [1]
    assert settled.refused[1].startswith("UnroutableError: 312 NO_ROUTE")
    # the publisher is reusable: the next batch starts clean
    broker.declare()
    again = publisher.publish_all([_message(broker)])
    assert (again.confirmed, again.refused) == ([0], {})


def test_marking_rows_sent_does_not_wait_for_the_wal_flush(broker: Broker) -> None:
    # A mark lost in a crash only republishes (the inbox absorbs it): no durable commit needed.
    write_orders(2)
    relay = OutboxRelay(broker.config("orders"))
    publisher = ConfirmingPublisher(broker._connection, broker._connection.channel())
    with CaptureQueriesContext(connection) as queries:
        assert relay.relay_batch(publisher) == 2
    statements = [q["sql"] for q in queries]
    # the marking statement turns it off for the transaction that marks the rows, and only it
    marks = [sql for sql in statements if sql.startswith("UPDATE")]
    assert len(marks) == 1, statements
    assert sending.UNFLUSHED_COMMIT in marks[0]
    assert statements.index(marks[0]) < statements.index("COMMIT")  # in the claim's transaction
    assert _unsent() == 0
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"


def test_two_copies_of_a_row_in_one_batch_are_confirmed_and_marked_once(broker: Broker) -> None:
    # As a relay that died between the confirm and the mark would send it: same message id.
    class Doubling(OutboxRelay):
        def _publish(self, publisher: ConfirmingPublisher, row: OutboxMessage) -> None:
            super()._publish(publisher, row)
            super()._publish(publisher, row)

    ids = write_orders(3)
    relay = Doubling(broker.config("orders"))
    publisher = ConfirmingPublisher(broker._connection, broker._connection.channel())
    assert relay.relay_batch(publisher) == 3
    assert _unsent() == 0
    received = broker.wait_for_messages(broker.names.queue("inventory"), 6)
    assert sorted(d.properties.message_id for d in received) == sorted(ids * 2)


def test_copies_of_an_unroutable_row_are_both_refused(broker: Broker) -> None:
    _unbind_order_created(broker)
    connection = broker._connection
    publisher = ConfirmingPublisher(connection, connection.channel())
    message = _message(broker)
    settled = publisher.publish_all([message, message])
    assert settled.confirmed == [] and sorted(settled.refused) == [0, 1]
