"""Fixtures for tests against the real PostgreSQL and RabbitMQ.

Every broker test works under its own name prefix (``test-<hex>.``) and deletes the exchanges
and queues of that prefix afterwards, so it never touches a running system.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
import pytest
from django.db import connection, connections, transaction
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker

from messaging import after_commit, topology
from messaging.config import MessagingConfig, get_config
from messaging.consumer import Consumer, Handler
from messaging.models import OutboxMessage
from messaging.outbox import publish_event
from messaging.worker import Job, Worker
from tests.factories import order_created

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
RETRY_DELAYS_MS = (50, 100)
DEFAULT_RETRY_DELAYS_MS = (1000, 5000, 30000)  # what a worker started from settings declares
LIBS = Path(__file__).resolve().parents[2]


def worker_env(prefix: str, **extra: str) -> dict[str, str]:
    """The environment of a worker process run by a test: this test's database and prefix."""
    db = connection.settings_dict
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DJANGO_SETTINGS_MODULE": "tests.worker_settings",
        "AMQP_URL": AMQP_URL,
        "MESSAGING_PREFIX": prefix,
        "MESSAGING_RETRY_DELAYS_MS": ",".join(str(ms) for ms in RETRY_DELAYS_MS),
        "PYTHONPATH": str(LIBS),
        **extra,
    }


RABBITMQCTL = shutil.which("rabbitmqctl")  # to drop connections from the broker's side


def close_connections_named(fragment: str) -> int:
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


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Poll until ``predicate()`` is truthy and return it; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def unsent_ids() -> set[str]:
    """Message ids of the outbox rows not marked sent."""
    rows = OutboxMessage.objects.filter(sent_at__isnull=True).values_list("message_id", flat=True)
    return {str(m) for m in rows}


def write_orders(count: int = 1) -> list[str]:
    """``count`` order.created events written in one transaction; their ids, in order."""
    ids = []
    with transaction.atomic():
        for _ in range(count):
            data = order_created()
            ids.append(publish_event("order.created", data, correlation_id=data["order_id"]).id)
    return ids


@dataclass
class Delivery:
    method: Any
    properties: pika.BasicProperties
    body: bytes

    @property
    def headers(self) -> dict[str, Any]:
        return dict(self.properties.headers or {})


class Broker:
    """A test's own view of RabbitMQ: its prefix, a channel, and helpers to publish and read."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.names = topology.Names(prefix)
        self._connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        self.channel: BlockingChannel = self._connection.channel()
        self.channel.confirm_delivery()

    def config(self, service: str, **overrides: Any) -> MessagingConfig:
        values: dict[str, Any] = {
            "service": service,
            "broker_url": AMQP_URL,
            "prefix": self.prefix,
            "handlers_path": None,
            "prefetch": 10,
            "retry_delays_ms": RETRY_DELAYS_MS,
            "heartbeat": 30,
            "relay_grace_seconds": get_config().relay_grace_seconds,  # as settings say
        }
        values.update(overrides)
        return MessagingConfig(**values)

    def declare(self) -> None:
        """Declare the whole layout, as ``declare_topology`` does before any worker starts."""
        topology.declare_all(self.channel, self.names, RETRY_DELAYS_MS)

    def declare_exchanges(self) -> None:
        """Only every publisher's exchange, as each relay declares its own."""
        topology.declare_exchanges(self.channel, self.names)

    def publish_event(self, event_type: str, body: bytes, **properties: Any) -> None:
        """Publish to the owning service's exchange, as a relay would."""
        self.channel.basic_publish(
            exchange=self.names.exchange(topology.publisher_of(event_type)),
            routing_key=event_type,
            body=body,
            properties=pika.BasicProperties(delivery_mode=2, **properties),
            mandatory=True,
        )

    def publish_to_queue(self, queue: str, body: bytes, **properties: Any) -> None:
        self.channel.basic_publish(
            exchange="",
            routing_key=queue,
            body=body,
            properties=pika.BasicProperties(delivery_mode=2, **properties),
            mandatory=True,
        )

    def get(self, queue: str) -> Delivery | None:
        method, properties, body = self.channel.basic_get(queue, auto_ack=True)
        if method is None:
            return None
        return Delivery(method, properties, body)

    def drain(self, queue: str) -> list[Delivery]:
        deliveries = []
        while (delivery := self.get(queue)) is not None:
            deliveries.append(delivery)
        return deliveries

    def wait_for_messages(self, queue: str, count: int, timeout: float = 10.0) -> list[Delivery]:
        got: list[Delivery] = []

        def enough() -> bool:
            got.extend(self.drain(queue))
            return len(got) >= count

        wait_for(enough, timeout)
        return got

    def message_count(self, queue: str) -> int:
        result = self.channel.queue_declare(queue, passive=True)
        return int(result.method.message_count)

    def consumers(self, queue: str) -> int | None:
        """How many consumers ``queue`` has, or None when it does not exist."""
        channel = self._connection.channel()  # a passive miss closes the channel it was on
        try:
            result = channel.queue_declare(queue, passive=True)
        except ChannelClosedByBroker:
            return None
        channel.close()
        return int(result.method.consumer_count)

    def queue_exists(self, queue: str) -> bool:
        return self.consumers(queue) is not None

    def exchange_exists(self, exchange: str) -> bool:
        channel = self._connection.channel()  # a passive miss closes the channel it was on
        try:
            channel.exchange_declare(exchange, passive=True)
        except ChannelClosedByBroker:
            return False
        channel.close()
        return True

    def all_queues(self, retry_delays_ms: tuple[int, ...] = RETRY_DELAYS_MS) -> list[str]:
        """Every queue of the layout under this prefix: main, retry and dead-letter queues."""
        return [
            name
            for service in topology.CONSUMES
            for name in (
                self.names.queue(service),
                *(self.names.retry_queue(service, delay) for delay in retry_delays_ms),
                self.names.dead_letter_queue(service),
            )
        ]

    def all_exchanges(self) -> list[str]:
        return [self.names.exchange(service) for service in topology.PUBLISHES]

    def delete_everything(self) -> None:
        channel = self._connection.channel()
        delays = tuple(sorted({*RETRY_DELAYS_MS, *DEFAULT_RETRY_DELAYS_MS}))
        topology.delete_all(channel, self.names, delays)
        channel.close()

    def close(self) -> None:
        try:
            self.delete_everything()
        finally:
            self._connection.close()


def queued_ids(broker: Broker, count: int, service: str = "inventory") -> list[str]:
    """Message ids of ``count`` messages taken from ``service``'s queue, in order."""
    received = broker.wait_for_messages(broker.names.queue(service), count)
    return [str(d.properties.message_id) for d in received]


@pytest.fixture
def broker() -> Iterator[Broker]:
    broker = Broker(f"test-{uuid.uuid4().hex[:12]}.")
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture
def deferring_writer(settings: Any, broker: Broker) -> Iterator[None]:
    """This thread writes orders' events, published at commit, their marks deferred
    (``after_commit.defer_marks``); nothing of it is left for the next test."""
    settings.MESSAGING_SERVICE = "orders"
    settings.MESSAGING_PREFIX = broker.prefix
    settings.MESSAGING_PUBLISH_AFTER_COMMIT = True
    broker.declare()
    after_commit.close_connection()
    after_commit.defer_marks()
    yield
    after_commit.defer_marks(False)
    after_commit._link.take_marks()  # nothing carried over to the next test
    after_commit.close_connection()


@contextmanager
def running(worker: Job | Worker) -> Iterator[threading.Thread]:
    """Run a job (a consumer, a relay) or a worker of several in a thread; stop it through its
    ``stop_event`` afterwards."""

    crashed: list[BaseException] = []

    def run() -> None:
        try:
            worker.run_forever()
        except BaseException as exc:
            crashed.append(exc)
            raise
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name=type(worker).__name__, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        worker.stop_event.set()
        thread.join(timeout=10)
        assert not thread.is_alive(), f"{type(worker).__name__} did not stop"
        assert not crashed, f"{type(worker).__name__} crashed: {crashed[0]!r}"
        assert not isinstance(worker, Worker) or not worker.failed, f"failed: {worker.failed}"


@contextmanager
def running_consumer(
    broker: Broker, service: str, handlers: dict[str, Handler], **overrides: Any
) -> Iterator[Consumer]:
    consumer = Consumer(handlers, broker.config(service, **overrides))
    with running(consumer):
        yield consumer
