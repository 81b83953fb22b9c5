"""Relay and consumer reconnect by themselves when the broker drops their connections."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.db import connection

from messaging.envelope import Envelope, decode
from messaging.models import InboxMessage, OutboxMessage
from messaging.relay import OutboxRelay
from tests.factories import order_created, reserve
from tests.integration.conftest import (
    RABBITMQCTL,
    Broker,
    close_connections_named,
    running,
    running_consumer,
    wait_for,
    write_orders,
)

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


@pytest.mark.skipif(RABBITMQCTL is None, reason="rabbitmqctl is needed to drop connections")
def test_relay_and_consumer_reconnect_after_the_broker_drops_them(
    broker: Broker, settings: Any
) -> None:
    settings.MESSAGING_SERVICE = "orders"
    settings.MESSAGING_PREFIX = broker.prefix
    broker.declare()  # the layout is provisioned before workers start (declare_topology)

    def handle(envelope: Envelope) -> None:
        pass  # the effect is the inbox row

    relay = OutboxRelay(broker.config("orders"))
    with (
        running_consumer(broker, "inventory", {"order.created": handle}) as consumer,
        running(relay),
    ):
        first = write_orders()[0]
        wait_for(lambda: _applied() == {first})

        assert close_connections_named(broker.prefix) == 2  # the relay's and the consumer's
        second = write_orders()[0]
        wait_for(lambda: _applied() == {first, second}, timeout=15)
        # A delivery whose ack was cut off comes again and is only acked: never applied twice.
        wait_for(lambda: consumer.handled >= 2)
    assert OutboxMessage.objects.filter(sent_at__isnull=True).count() == 0


def _terminate_other_database_sessions() -> int:
    """What a database restart does to every worker: their sessions die under them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        (count,) = cursor.fetchone()
    return int(count)


def test_relay_and_consumer_reconnect_after_the_database_drops_them(
    broker: Broker, settings: Any
) -> None:
    settings.MESSAGING_SERVICE = "orders"
    settings.MESSAGING_PREFIX = broker.prefix
    broker.declare()  # the layout is provisioned before workers start (declare_topology)

    def handle(envelope: Envelope) -> None:
        InboxMessage.objects.count()  # the handler uses the database too

    relay = OutboxRelay(broker.config("orders"))
    with (
        running_consumer(broker, "inventory", {"order.created": handle}) as consumer,
        running(relay),
    ):
        first = write_orders()[0]
        wait_for(lambda: _applied() == {first})

        # The relay's session and the consumer's.
        assert _terminate_other_database_sessions() >= 2
        second = write_orders()[0]
        wait_for(lambda: _applied() == {first, second}, timeout=15)
        third = write_orders()[0]
        wait_for(lambda: _applied() == {first, second, third}, timeout=15)
        wait_for(lambda: consumer.handled == 3)
    assert OutboxMessage.objects.filter(sent_at__isnull=True).count() == 0


def _applied() -> set[str]:
    """Ids of the messages whose effect committed (attempts that rolled back do not count)."""
    return {
        str(message_id) for message_id in InboxMessage.objects.values_list("message_id", flat=True)
    }


def test_a_consumer_whose_database_session_dies_in_a_batch_applies_each_message_once(
    broker: Broker, settings: Any
) -> None:
    settings.MESSAGING_SERVICE = "inventory"
    settings.MESSAGING_PREFIX = broker.prefix
    broker.declare()
    killed: list[str] = []

    def reserve_once(envelope: Envelope) -> None:
        reserve(envelope)
        if not killed:  # the first time only: its session dies before the batch commits
            killed.append(envelope.id)
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    messages = [
        Envelope.new("order.created", order_created(), source="orders", correlation_id="c")
        for _ in range(6)
    ]
    with running_consumer(broker, "inventory", {"order.created": reserve_once}) as consumer:
        for message in messages:
            broker.publish_event("order.created", message.to_json().encode())
        wait_for(lambda: _applied() == {m.id for m in messages}, timeout=15)
        wait_for(lambda: broker.message_count(broker.names.queue("inventory")) == 0)
        wait_for(lambda: consumer.handled == len(messages))
    assert killed
    # One event per message: nothing applied twice, nothing lost.
    causes = Counter(
        decode(row.body.encode()).causation_id for row in OutboxMessage.objects.order_by("id")
    )
    assert causes == Counter({m.id: 1 for m in messages})
    assert broker.message_count(broker.names.dead_letter_queue("inventory")) == 0
