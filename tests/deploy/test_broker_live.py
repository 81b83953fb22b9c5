"""The broker definitions on the real RabbitMQ: imported into a private virtual host with
private user names, then each service's user is tried against its own and others' names."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError, ChannelClosedByBroker

from messaging import topology
from tests.deploy.manifests import SERVICE_NAMES, load_definitions

BROKER = "127.0.0.1:5672"
RETRY_DELAYS_MS = (1000, 5000, 30000)
NAMES = topology.Names("")


def rabbitmqctl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["rabbitmqctl", "-q", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def private_copy(definitions: dict[str, Any], vhost: str, users: dict[str, str]) -> dict[str, Any]:
    """The definitions in ``vhost``, service users renamed; no admin, no policies (the shared
    test broker may predate the 'quorum_queues' policy target)."""
    copy: dict[str, Any] = {
        "users": [
            {**user, "name": users[user["name"]]}
            for user in definitions["users"]
            if user["name"] in users
        ],
        "vhosts": [{**definitions["vhosts"][0], "name": vhost}],
        "permissions": [
            {**p, "user": users[p["user"]], "vhost": vhost}
            for p in definitions["permissions"]
            if p["user"] in users
        ],
    }
    for key in ("queues", "exchanges", "bindings"):
        copy[key] = [{**item, "vhost": vhost} for item in definitions[key]]
    return copy


@pytest.fixture(scope="module")
def broker() -> Iterator[Callable[[str], Any]]:
    if shutil.which("rabbitmqctl") is None or rabbitmqctl("status").returncode != 0:
        pytest.skip("no RabbitMQ node to administer here")
    run = uuid.uuid4().hex[:8]
    vhost = f"deploy-check-{run}"
    users = {service: f"deploy-check-{run}-{service}" for service in SERVICE_NAMES}
    # Through standard input: rabbitmqctl runs as the broker's user, who cannot read our files.
    definitions = json.dumps(private_copy(load_definitions(), vhost, users))
    imported = rabbitmqctl("import_definitions", "--format", "json", stdin=definitions)
    assert imported.returncode == 0, imported.stdout + imported.stderr

    def connect(service: str) -> pika.BlockingConnection:
        password = f"{service}-local-only"  # the local default whose hash is in the file
        url = f"amqp://{users[service]}:{password}@{BROKER}/{vhost}"
        return pika.BlockingConnection(pika.URLParameters(url))

    try:
        yield connect
    finally:
        rabbitmqctl("delete_vhost", vhost)
        for user in users.values():
            rabbitmqctl("delete_user", user)


def attempt(
    connect: Callable[[str], Any], service: str, action: Callable[..., Any], *args: Any
) -> int:
    """Run ``action(channel, *args)`` as ``service`` on a confirming channel: 0 or the refusal."""
    connection = connect(service)
    try:
        channel: BlockingChannel = connection.channel()
        channel.confirm_delivery()
        action(channel, *args)
        return 0
    except ChannelClosedByBroker as refusal:
        return int(refusal.reply_code)
    finally:
        with contextlib.suppress(AMQPError):
            connection.close()


def publish(channel: BlockingChannel, exchange: str, routing_key: str) -> None:
    channel.basic_publish(exchange, routing_key, b"{}")


def read(channel: BlockingChannel, queue: str) -> None:
    channel.basic_get(queue, auto_ack=False)


def declare_own_queues(channel: BlockingChannel, service: str) -> None:
    topology.declare_consumer_queues(channel, NAMES, service, RETRY_DELAYS_MS)


def declare_all(channel: BlockingChannel) -> None:
    topology.declare_all(channel, NAMES, RETRY_DELAYS_MS)


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_a_service_publishes_to_its_own_exchange(service: str, broker: Any) -> None:
    event = topology.PUBLISHES[service][0]
    assert attempt(broker, service, publish, NAMES.exchange(service), event) == 0


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_publishing_to_another_services_exchange_is_refused(service: str, broker: Any) -> None:
    for other in SERVICE_NAMES:
        if other != service:
            exchange, event = NAMES.exchange(other), topology.PUBLISHES[other][0]
            refusal = attempt(broker, service, publish, exchange, event)
            assert refusal == 403, f"{service} published to {exchange}"


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_reading_another_services_queue_is_refused(service: str, broker: Any) -> None:
    for other in SERVICE_NAMES:
        outcome = attempt(broker, service, read, NAMES.queue(other))
        assert outcome == (0 if other == service else 403), f"{service} read {other}'s queue"


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_a_service_can_declare_its_own_queues_as_the_consumer_does(
    service: str, broker: Any
) -> None:
    assert attempt(broker, service, declare_own_queues, service) == 0


def test_declaring_the_whole_layout_is_refused(broker: Any) -> None:
    # What the relay does at start-up today (topology.declare_all): see docs/operations.md.
    assert attempt(broker, "orders", declare_all) == 403
