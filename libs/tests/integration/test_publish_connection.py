"""The writers' publish connection against the real RabbitMQ: what it confirms, what it refuses,
and how it ends."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker

from messaging.publish_connection import PublishConnection
from messaging.publisher import OutgoingMessage
from tests.integration.conftest import AMQP_URL, RABBITMQCTL, Broker, close_connections_named

pytestmark = pytest.mark.broker


@pytest.fixture
def queue(broker: Broker) -> Iterator[str]:
    name = f"{broker.prefix}publish-connection"
    broker.channel.queue_declare(name, durable=True)
    yield name
    broker.channel.queue_delete(name)


@pytest.fixture
def publisher(broker: Broker) -> Iterator[PublishConnection]:
    publisher = PublishConnection(AMQP_URL, name=f"{broker.prefix}writer", timeout=2.0)
    yield publisher
    publisher.close()


def _message(queue: str, body: bytes = b'{"n": 1}', *, exchange: str = "") -> OutgoingMessage:
    return OutgoingMessage(
        exchange=exchange,
        routing_key=queue,
        body=body,
        properties=pika.BasicProperties(
            message_id=str(uuid.uuid4()), delivery_mode=2, content_type="application/json"
        ),
    )


def test_a_batch_is_confirmed_and_arrives_whole_in_order(
    broker: Broker, publisher: PublishConnection, queue: str
) -> None:
    large = bytes(range(256)) * 1200  # 300 KiB: three body frames of the negotiated size
    messages = [_message(queue, f'{{"n": {n}}}'.encode()) for n in range(20)]
    messages.insert(7, _message(queue, large))
    settled = publisher.publish_all(messages)
    assert settled.confirmed == list(range(21)) and settled.refused == {}
    received = broker.wait_for_messages(queue, 21)
    assert [d.properties.message_id for d in received] == [
        m.properties.message_id for m in messages
    ]
    assert received[7].body == large
    assert received[0].properties.delivery_mode == 2
    assert received[0].properties.content_type == "application/json"
    # The next batch starts from nothing: only its own messages are settled.
    again = publisher.publish_all([_message(queue)])
    assert again.confirmed == [0]


def test_an_unroutable_message_is_refused_alone(
    broker: Broker, publisher: PublishConnection, queue: str
) -> None:
    messages = [_message(queue), _message(f"{queue}-nowhere"), _message(queue)]
    settled = publisher.publish_all(messages)
    assert settled.confirmed == [0, 2]
    assert list(settled.refused) == [1]
    assert settled.refused[1].startswith("UnroutableError: 312 NO_ROUTE")
    assert len(broker.wait_for_messages(queue, 2)) == 2
    assert publisher.is_open  # a refusal is not a failure of the connection


def test_a_message_the_queue_rejects_is_refused(
    broker: Broker, publisher: PublishConnection
) -> None:
    full = f"{broker.prefix}full"
    broker.channel.queue_declare(
        full, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
    )
    try:
        settled = publisher.publish_all([_message(full), _message(full)])
    finally:
        broker.channel.queue_delete(full)
    assert settled.confirmed == [0]
    assert settled.refused == {1: "NackError: the broker refused the message"}


def test_a_missing_exchange_closes_the_channel_and_the_connection_is_done(
    broker: Broker, publisher: PublishConnection, queue: str
) -> None:
    publisher.publish(_message(queue, exchange=f"{broker.prefix}no-such-exchange"))
    with pytest.raises(ChannelClosedByBroker) as raised:
        publisher.wait()
    assert raised.value.reply_code == 404
    assert not publisher.is_open


def test_a_message_without_an_id_is_not_sent(publisher: PublishConnection, queue: str) -> None:
    message = _message(queue)
    message.properties.message_id = None
    with pytest.raises(ValueError, match="message_id"):
        publisher.publish(message)
    assert publisher.is_open


def test_wrong_credentials_fail_the_handshake(broker: Broker) -> None:
    url = AMQP_URL.replace("guest:guest@", "guest:wrong@")
    with pytest.raises(ConnectionClosedByBroker) as raised:
        PublishConnection(url, name=f"{broker.prefix}writer", timeout=2.0)
    assert raised.value.reply_code == 403  # ACCESS_REFUSED, said before the broker hangs up


def test_a_refused_connection_fails_fast() -> None:
    started = time.monotonic()
    with pytest.raises(OSError):
        PublishConnection("amqp://guest:guest@127.0.0.1:1/%2F", name="nowhere", timeout=1.0)
    assert time.monotonic() - started < 1.0


@pytest.mark.skipif(RABBITMQCTL is None, reason="rabbitmqctl is needed to look at connections")
def test_named_without_heartbeats_and_closed_politely(broker: Broker) -> None:
    assert RABBITMQCTL is not None
    name = f"{broker.prefix}writer-{uuid.uuid4().hex[:6]}"
    publisher = PublishConnection(AMQP_URL, name=name, timeout=2.0)

    def listed() -> list[str]:
        listing = subprocess.run(
            [RABBITMQCTL, "-q", "list_connections", "client_properties", "timeout", "state"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return [line for line in listing.stdout.splitlines() if name in line]

    [line] = listed()
    assert line.split("\t")[-2:] == ["0", "running"]  # no heartbeat timeout
    publisher.close()
    assert not publisher.is_open
    deadline = time.monotonic() + 10
    while listed() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert listed() == []


@pytest.mark.skipif(RABBITMQCTL is None, reason="rabbitmqctl is needed to drop connections")
def test_a_close_sent_while_it_idled_is_read_before_the_next_batch(
    broker: Broker, publisher: PublishConnection, queue: str
) -> None:
    publisher.publish_all([_message(queue)])
    assert close_connections_named(f"{broker.prefix}writer") == 1
    time.sleep(0.2)  # the close frame has arrived by now
    with pytest.raises(ConnectionClosedByBroker):
        publisher.publish(_message(queue))
    assert not publisher.is_open
    assert len(broker.wait_for_messages(queue, 1)) == 1  # only the first batch went out
