"""Who declares what on the broker: the contract that lets each service run on its own account.

* ``declare_topology`` declares the whole layout up front (the local runner runs it first);
* a relay declares only its own exchange, and nothing at all when the broker refuses a row;
* a consumer declares only its own queues and bindings, and waits for a missing exchange;
* every relayed message carries ``user_id`` (the broker URL's username, which RabbitMQ checks
  against the connection's account) and ``app_id`` (the publishing service).
"""

from __future__ import annotations

import dataclasses
import io
import logging
import uuid
from typing import Any

import pika
import pytest
from django.core.management import call_command
from django.db import transaction

from messaging import topology
from messaging.envelope import Envelope
from messaging.models import InboxMessage, OutboxMessage
from messaging.outbox import publish_event
from messaging.publisher import OutgoingMessage, Settled
from messaging.relay import OutboxRelay
from tests.factories import envelope, order_created, stock_reserved
from tests.integration.conftest import (
    DEFAULT_RETRY_DELAYS_MS,
    RETRY_DELAYS_MS,
    Broker,
    running,
    running_consumer,
    wait_for,
)

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def _nothing_declared(broker: Broker) -> None:
    for exchange in broker.all_exchanges():
        assert not broker.exchange_exists(exchange), exchange
    for queue in broker.all_queues((*RETRY_DELAYS_MS, *DEFAULT_RETRY_DELAYS_MS)):
        assert not broker.queue_exists(queue), queue


def test_declare_topology_declares_the_whole_layout_under_the_prefix(
    broker: Broker, settings: Any
) -> None:
    settings.MESSAGING_PREFIX = broker.prefix
    settings.MESSAGING_RETRY_DELAYS_MS = RETRY_DELAYS_MS
    _nothing_declared(broker)
    out = io.StringIO()
    call_command("declare_topology", stdout=out)
    call_command("declare_topology", stdout=io.StringIO())  # run before every start: idempotent
    assert f"prefix {broker.prefix!r}" in out.getvalue()

    names = broker.names
    for service in topology.PUBLISHES:
        assert broker.exchange_exists(names.exchange(service)), service
    for queue in broker.all_queues():
        assert broker.queue_exists(queue), queue
    for queue in broker.all_queues(DEFAULT_RETRY_DELAYS_MS):
        if ".retry." in queue:
            assert not broker.queue_exists(queue), "declared a delay it was not configured with"

    # Declared as the workers declare them: re-declaring with their exact arguments is accepted
    # (RabbitMQ closes the channel on any difference in type, durability or arguments).
    channel = broker.channel
    for service in topology.PUBLISHES:
        channel.exchange_declare(names.exchange(service), exchange_type="direct", durable=True)
    for service in topology.CONSUMES:
        channel.queue_declare(names.queue(service), durable=True)
        channel.queue_declare(names.dead_letter_queue(service), durable=True)
        for exchange in (names.retry_exchange(service), names.dead_letter_exchange(service)):
            channel.exchange_declare(exchange, exchange_type="direct", durable=True)
        for delay in RETRY_DELAYS_MS:
            channel.queue_declare(
                names.retry_queue(service, delay),
                durable=True,
                arguments={
                    "x-message-ttl": delay,
                    "x-dead-letter-exchange": names.retry_exchange(service),
                    "x-dead-letter-routing-key": names.queue(service),
                },
            )

    # Bound by event type: each event reaches exactly the services that consume it.
    for event_type in {event for events in topology.PUBLISHES.values() for event in events}:
        broker.publish_event(event_type, b"{}", type=event_type)  # mandatory: unroutable raises
    for service, events in topology.CONSUMES.items():
        received = broker.wait_for_messages(names.queue(service), len(events))
        assert sorted(d.method.routing_key for d in received) == sorted(events), service
        assert broker.message_count(names.queue(service)) == 0
        assert broker.message_count(names.dead_letter_queue(service)) == 0


def test_a_binding_an_earlier_release_declared_is_removed(broker: Broker) -> None:
    """user-notification's queue was bound to ``order.created`` while it sent a "received"
    notice; declaring its queues now removes that binding (and declaring them again, with no
    such binding left, succeeds), while inventory still receives the event."""
    names, channel = broker.names, broker.channel
    broker.declare()
    queue, inventory = names.queue("user-notification"), names.queue("inventory")
    assert topology.RETIRED["user-notification"] == ("order.created",)
    channel.queue_bind(queue, names.exchange("orders"), "order.created")  # the earlier release
    broker.publish_event("order.created", b"{}", type="order.created")
    assert [d.method.routing_key for d in broker.wait_for_messages(queue, 1)] == ["order.created"]

    for _ in range(2):
        channel = topology.declare_consumer_queues(
            channel, names, "user-notification", RETRY_DELAYS_MS
        )
    broker.publish_event("order.created", b"{}", type="order.created")
    broker.publish_event("order.confirmed", b"{}", type="order.confirmed")
    received = broker.wait_for_messages(queue, 1)
    assert [d.method.routing_key for d in received] == ["order.confirmed"]
    inventory_got = broker.wait_for_messages(inventory, 2)
    assert [d.method.routing_key for d in inventory_got] == ["order.created", "order.created"]
    assert broker.message_count(queue) == 0


def test_the_relay_declares_its_own_exchange_and_nothing_else(
    broker: Broker, settings: Any
) -> None:
    settings.MESSAGING_SERVICE = "orders"
    settings.MESSAGING_PREFIX = broker.prefix
    _nothing_declared(broker)
    relay = OutboxRelay(broker.config("orders"))
    with running(relay):
        with transaction.atomic():
            publish_event("order.created", order_created(), correlation_id="c")
        # Refused (no queue is bound), kept unsent, and tried again.
        row = wait_for(lambda: OutboxMessage.objects.filter(attempts__gte=1).first())
        assert row.sent_at is None
        assert row.last_error.startswith("UnroutableError")
        assert broker.exchange_exists(broker.names.exchange("orders"))
        others = [e for e in broker.all_exchanges() if e != broker.names.exchange("orders")]
        for exchange in others:
            assert not broker.exchange_exists(exchange), exchange
        # A refusal declares nothing either: still refused on the next try.
        row = wait_for(lambda: OutboxMessage.objects.filter(attempts__gte=2).first(), timeout=5)
        assert row.sent_at is None
        assert relay.published == 0
    for exchange in others:
        assert not broker.exchange_exists(exchange), exchange
    for queue in broker.all_queues((*RETRY_DELAYS_MS, *DEFAULT_RETRY_DELAYS_MS)):
        assert not broker.queue_exists(queue), queue


def test_a_consumer_waits_for_its_source_exchange_then_consumes(
    broker: Broker, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.MESSAGING_SERVICE = "inventory"
    settings.MESSAGING_PREFIX = broker.prefix
    caplog.set_level(logging.WARNING, logger="messaging.consumer")
    # The exchanges inventory's events come from: all but the last exist when it starts.
    sources = [
        broker.names.exchange(service)
        for service in sorted({topology.publisher_of(e) for e in topology.CONSUMES["inventory"]})
    ]
    *present, source = sources
    for exchange in present:
        broker.channel.exchange_declare(exchange, exchange_type="direct", durable=True)
    queue = broker.names.queue("inventory")
    applied: list[str] = []

    def refused_binds() -> int:
        return sum(
            "consumer lost the broker" in record.getMessage()
            and f"no exchange '{source}'" in record.getMessage()
            for record in list(caplog.records)
        )

    def handle(message: Envelope) -> None:
        applied.append(message.id)

    with running_consumer(broker, "inventory", {"order.created": handle}) as consumer:
        wait_for(lambda: refused_binds() >= 2)  # it keeps trying, with back-off
        assert not broker.consumers(queue)  # not consuming (its queue may exist, unbound)
        assert not broker.exchange_exists(source)  # and it never declares the exchange itself

        # Its publisher's relay declares it.
        broker.channel.exchange_declare(source, exchange_type="direct", durable=True)
        wait_for(lambda: broker.consumers(queue) == 1, timeout=15)
        message = envelope()
        broker.publish_event("order.created", message.to_json().encode(), message_id=message.id)
        wait_for(lambda: consumer.handled == 1)
    assert applied == [message.id]
    assert InboxMessage.objects.filter(consumer="inventory", message_id=message.id).exists()
    assert broker.queue_exists(broker.names.dead_letter_queue("inventory"))
    for delay in RETRY_DELAYS_MS:
        assert broker.queue_exists(broker.names.retry_queue("inventory", delay))
    # Only the exchanges its publishers declared exist: the consumer declared none.
    assert {e for e in broker.all_exchanges() if broker.exchange_exists(e)} == set(sources)


PUBLISHED = {
    "orders": ("order.created", order_created, "inventory"),
    "inventory": ("stock.reserved", lambda: stock_reserved(str(uuid.uuid4())), "orders"),
    "user-notification": (
        "user.registered",
        lambda: {"user_id": 7, "username": "alice", "email": "alice@example.com"},
        "user-notification",
    ),
}


@pytest.mark.parametrize("service", sorted(PUBLISHED))
def test_every_relayed_message_carries_user_id_and_app_id(
    broker: Broker, settings: Any, service: str
) -> None:
    event_type, payload, consumer = PUBLISHED[service]
    settings.MESSAGING_SERVICE = service
    settings.MESSAGING_PREFIX = broker.prefix
    broker.declare()
    with transaction.atomic():
        for _ in range(3):
            publish_event(event_type, payload(), correlation_id="c")
    relay = OutboxRelay(broker.config(service))
    with running(relay):
        wait_for(lambda: not OutboxMessage.objects.filter(sent_at__isnull=True).exists())
    deliveries = broker.wait_for_messages(broker.names.queue(consumer), 3)
    assert len(deliveries) == 3
    for delivery in deliveries:
        assert delivery.properties.user_id == "guest"  # the username in AMQP_URL
        assert delivery.properties.app_id == service
        assert delivery.method.exchange == broker.names.exchange(service)


class _RecordingPublisher:
    """Takes the place of ``ConfirmingPublisher``: records, and confirms everything."""

    def __init__(self) -> None:
        self.published: list[pika.BasicProperties] = []

    def publish(self, message: OutgoingMessage) -> None:
        self.published.append(message.properties)

    def wait(self) -> Settled:
        return Settled(confirmed=list(range(len(self.published))))


def test_user_id_is_the_broker_urls_username(broker: Broker, settings: Any) -> None:
    settings.MESSAGING_SERVICE = "orders"
    settings.MESSAGING_PREFIX = broker.prefix
    with transaction.atomic():
        publish_event("order.created", order_created(), correlation_id="c")
    url = "amqp://svc%2Borders:s3cret@127.0.0.1:5672/%2F"
    relay = OutboxRelay(dataclasses.replace(broker.config("orders"), broker_url=url))
    channel = _RecordingPublisher()
    assert relay.relay_batch(channel) == 1  # type: ignore[arg-type]
    [properties] = channel.published
    assert properties.user_id == "svc+orders"  # percent-decoded, as the broker sees it
    assert properties.app_id == "orders"


def test_delete_all_removes_what_declare_all_declared(broker: Broker) -> None:
    broker.declare()
    assert all(broker.queue_exists(queue) for queue in broker.all_queues())
    channel = broker._connection.channel()
    topology.delete_all(channel, broker.names, RETRY_DELAYS_MS)
    channel.close()
    assert not any(broker.queue_exists(queue) for queue in broker.all_queues())
    assert not any(
        broker.exchange_exists(broker.names.exchange(service)) for service in topology.PUBLISHES
    )


def test_declaring_again_keeps_retry_queues_an_earlier_release_declared(broker: Broker) -> None:
    # Before the retry exchanges, retry queues dead-lettered through the default exchange; the
    # broker refuses those names with other arguments, and the closed channel must not stop
    # the rest of the layout (declare_topology runs at every upgrade).
    names = broker.names
    for service in topology.CONSUMES:
        for delay in RETRY_DELAYS_MS:
            broker.channel.queue_declare(
                names.retry_queue(service, delay),
                durable=True,
                arguments={
                    "x-message-ttl": delay,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": names.queue(service),
                },
            )

    channel = topology.declare_all(broker._connection.channel(), names, RETRY_DELAYS_MS)

    assert channel.is_open
    channel.confirm_delivery()
    for service in topology.CONSUMES:
        assert broker.exchange_exists(names.retry_exchange(service)), service
        assert broker.exchange_exists(names.dead_letter_exchange(service)), service
        assert broker.queue_exists(names.dead_letter_queue(service)), service
        # A retry copy through the new exchange still comes back to the service's queue.
        channel.basic_publish(
            names.retry_exchange(service),
            names.retry_queue(service, RETRY_DELAYS_MS[0]),
            b"{}",
            mandatory=True,
        )
        assert len(broker.wait_for_messages(names.queue(service), 1)) == 1, service
