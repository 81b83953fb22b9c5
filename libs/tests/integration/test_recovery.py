"""Relay and consumer reconnect by themselves when the broker drops their connections."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
from django.db import connection, transaction

from messaging.envelope import Envelope
from messaging.models import InboxMessage, OutboxMessage
from messaging.outbox import publish_event
from messaging.relay import OutboxRelay
from tests.factories import order_created
from tests.integration.conftest import Broker, running, running_consumer, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

RABBITMQCTL = shutil.which("rabbitmqctl")


def _close_connections_named(fragment: str) -> int:
    """Close, from the broker's side, every connection whose name contains ``fragment``."""
    assert RABBITMQCTL is not None
    listing = subprocess.run(
        [RABBITMQCTL, "-q", "list_connections", "pid", "client_properties"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    pids = [line.split("\t")[0] for line in listing.stdout.splitlines() if fragment in line]
    for pid in pids:
        subprocess.run(
            [RABBITMQCTL, "-q", "close_connection", pid, "test: simulated broker restart"],
            capture_output=True,
            timeout=30,
            check=True,
        )
    return len(pids)


def _place_order() -> str:
    data = order_created()
    with transaction.atomic():
        return publish_event("order.created", data, correlation_id=data["order_id"]).id


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
        first = _place_order()
        wait_for(lambda: _applied() == {first})

        assert _close_connections_named(broker.prefix) == 2  # the relay's and the consumer's
        second = _place_order()
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
        first = _place_order()
        wait_for(lambda: _applied() == {first})

        # The relay's session and its LISTEN session, and the consumer's session.
        assert _terminate_other_database_sessions() >= 3
        second = _place_order()
        wait_for(lambda: _applied() == {first, second}, timeout=15)
        third = _place_order()
        wait_for(lambda: _applied() == {first, second, third}, timeout=15)
        wait_for(lambda: consumer.handled == 3)
    assert OutboxMessage.objects.filter(sent_at__isnull=True).count() == 0


def _applied() -> set[str]:
    """Ids of the messages whose effect committed (attempts that rolled back do not count)."""
    return {
        str(message_id) for message_id in InboxMessage.objects.values_list("message_id", flat=True)
    }
