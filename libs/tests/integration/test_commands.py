"""``run_relay`` and ``run_consumer`` as real processes: they work and stop cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import transaction

from messaging.models import InboxMessage, OutboxMessage
from messaging.outbox import publish_event
from tests.factories import envelope, order_created
from tests.integration.conftest import LIBS, Broker, wait_for, worker_env

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


@contextmanager
def command(name: str, prefix: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "django", name],
        cwd=LIBS,
        env=worker_env(prefix),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=10)
    assert process.returncode == 0, output
    return output


def test_run_relay_publishes_and_stops_on_sigterm(broker: Broker, settings: Any) -> None:
    settings.MESSAGING_SERVICE = "orders"
    settings.MESSAGING_PREFIX = broker.prefix
    broker.declare()  # the layout is provisioned before workers start (declare_topology)
    with transaction.atomic():
        for _ in range(2):
            publish_event("order.created", order_created(), correlation_id="c")
    with command("run_relay", broker.prefix) as process:
        wait_for(lambda: not OutboxMessage.objects.filter(sent_at__isnull=True).exists())
        output = _stop(process)
    assert "outbox relay starting" in output
    assert "outbox relay stopped after 2 messages" in output
    assert len(broker.wait_for_messages(broker.names.queue("inventory"), 2)) == 2


def test_run_consumer_applies_and_stops_on_sigterm(broker: Broker) -> None:
    broker.declare()
    message = envelope()
    with command("run_consumer", broker.prefix) as process:
        broker.publish_event("order.created", message.to_json().encode())
        wait_for(lambda: InboxMessage.objects.filter(message_id=message.id).exists())
        output = _stop(process)
    assert f"consumer for {broker.names.queue('inventory')} starting" in output
    assert "consumer stopped after 1 messages" in output
