"""``run_worker`` as a real process: its jobs work, and stop cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from messaging.models import InboxMessage, OutboxMessage
from messaging.outbox import publish_event
from tests.factories import envelope, order_created, stock_reserved
from tests.integration.conftest import LIBS, Broker, wait_for, worker_env

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


@contextmanager
def command(prefix: str, *argv: str, **extra_env: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "django", *argv],
        cwd=LIBS,
        env=worker_env(prefix, **extra_env),
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


def test_the_relay_publishes_and_stops_on_sigterm(broker: Broker, settings: Any) -> None:
    settings.MESSAGING_SERVICE = "orders"
    settings.MESSAGING_PREFIX = broker.prefix
    broker.declare()  # the layout is provisioned before workers start (declare_topology)
    with transaction.atomic():
        for _ in range(2):
            publish_event("order.created", order_created(), correlation_id="c")
    with command(broker.prefix, "run_worker", "relay") as process:
        wait_for(lambda: not OutboxMessage.objects.filter(sent_at__isnull=True).exists())
        output = _stop(process)
    assert "outbox relay starting" in output
    assert "outbox relay stopped after 2 messages" in output
    assert len(broker.wait_for_messages(broker.names.queue("inventory"), 2)) == 2


def test_the_consumer_applies_and_stops_on_sigterm(broker: Broker) -> None:
    broker.declare()
    message = envelope()
    with command(broker.prefix, "run_worker", "consumer") as process:
        broker.publish_event("order.created", message.to_json().encode())
        wait_for(lambda: InboxMessage.objects.filter(message_id=message.id).exists())
        output = _stop(process)
    assert f"consumer for {broker.names.queue('inventory')} starting" in output
    assert "consumer stopped after 1 messages" in output


def test_one_worker_runs_every_job_and_beats_while_all_are_ready(
    broker: Broker, settings: Any, tmp_path: Path
) -> None:
    settings.MESSAGING_SERVICE = "inventory"
    settings.MESSAGING_PREFIX = broker.prefix
    broker.declare()
    heartbeat = tmp_path / "worker.heartbeat"
    with transaction.atomic():
        publish_event("stock.reserved", stock_reserved(str(uuid.uuid4())), correlation_id="c")
    message = envelope()
    with command(broker.prefix, "run_worker", WORKER_HEARTBEAT_FILE=str(heartbeat)) as process:
        broker.publish_event("order.created", message.to_json().encode())
        wait_for(lambda: InboxMessage.objects.filter(message_id=message.id).exists())
        wait_for(lambda: not OutboxMessage.objects.filter(sent_at__isnull=True).exists())
        wait_for(heartbeat.exists)  # both jobs connected and working
        output = _stop(process)
    assert "worker of inventory starting: consumer, relay" in output
    assert "consumer stopped after 1 messages" in output
    assert "outbox relay stopped after 1 messages" in output
    assert not heartbeat.exists()  # stopped: no longer ready


def test_an_unknown_job_is_refused(broker: Broker) -> None:
    with command(broker.prefix, "run_worker", "mailer") as process:
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 1
    assert "no job mailer; this service has consumer, relay" in output
