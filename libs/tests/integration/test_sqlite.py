"""The laptop path: SQLite instead of PostgreSQL (no ``SKIP LOCKED``, no server-side binding).

Django is configured once per process, so this runs in a child process of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.integration.conftest import AMQP_URL, RETRY_DELAYS_MS, Broker

pytestmark = pytest.mark.broker

SCRIPT = r"""
import threading, time, uuid
import django
from django.conf import settings
from service_runtime.settings import build

# First the relay alone, sending every row at once; publishing after commit comes last.
settings.configure(
    **{
        **build("orders", apps=[], urlconf="tests.urls"),
        "MESSAGING_PUBLISH_AFTER_COMMIT": False,
        "MESSAGING_RELAY_GRACE_SECONDS": 0.0,
    }
)
django.setup()
from django.core.management import call_command
from django.db import connection, transaction
from django.test import override_settings
from messaging.consumer import ACK, MessageProcessor
from messaging.models import InboxMessage, OutboxMessage
from messaging.outbox import publish_event
from messaging.relay import OutboxRelay

call_command("migrate", verbosity=0)
assert connection.vendor == "sqlite", connection.vendor
call_command("declare_topology", verbosity=0)  # as the local runner does before any worker

def publish():
    data = {"order_id": str(uuid.uuid4()), "user_id": 1,
            "lines": [{"product_id": 1, "quantity": 1}]}
    with transaction.atomic():
        return publish_event("order.created", data, correlation_id=data["order_id"])

def wait_sent(timeout=5.0):
    deadline = time.monotonic() + timeout
    while OutboxMessage.objects.filter(sent_at__isnull=True).exists():
        assert time.monotonic() < deadline, "outbox not relayed"
        time.sleep(0.005)

first = publish()
relay = OutboxRelay()
thread = threading.Thread(target=relay.run_forever)
thread.start()
try:
    wait_sent()
    started = time.monotonic()
    publish()
    wait_sent()
    latency = time.monotonic() - started
finally:
    relay.stop_event.set()
    thread.join(10)
assert relay.published == 2, relay.published
assert latency < 0.5, latency

calls = []
processor = MessageProcessor("orders", {"order.created": calls.append}, 3)
raw = first.to_json().encode()
assert processor.process(raw) == ACK and processor.process(raw) == ACK
assert len(calls) == 1 and InboxMessage.objects.count() == 1

def failing(envelope):
    publish()
    raise RuntimeError("boom")

other = MessageProcessor("audit", {"order.created": failing}, 3)
assert other.process(raw).action == "retry"
assert InboxMessage.objects.count() == 1 and OutboxMessage.objects.count() == 2

import pika
from messaging.config import get_config
config = get_config()

def queued():
    broker = pika.BlockingConnection(pika.URLParameters(config.broker_url))
    try:
        return broker.channel().queue_declare(
            config.names.queue("inventory"), passive=True
        ).method.message_count
    finally:
        broker.close()

assert queued() == 2, queued()

# Published by its writer right after the commit, no relay running.
override_settings(MESSAGING_PUBLISH_AFTER_COMMIT=True).enable()
direct = publish()
row = OutboxMessage.objects.get(message_id=direct.id)
assert row.sent_at is not None and row.attempts == 0, row
assert queued() == 3, queued()

# Several events written together: one INSERT of several rows, ids in publish order.
from messaging.outbox import collecting
with transaction.atomic(), collecting():
    together = [publish().id for _ in range(3)]
written = OutboxMessage.objects.order_by("id").values_list("message_id", flat=True)
assert [str(m) for m in written][-3:] == together
assert not OutboxMessage.objects.filter(sent_at__isnull=True).exists()
assert queued() == 6, queued()

# Pruning and the tables' sizes: no SKIP LOCKED, timestamps read back as text.
from datetime import timedelta
from django.utils import timezone
from messaging.metrics import TablesCollector
from messaging.pruning import PruneJob
long_ago = timezone.now() - timedelta(days=30)
OutboxMessage.objects.filter(sent_at__isnull=False).update(sent_at=long_ago, created_at=long_ago)
InboxMessage.objects.update(processed_at=long_ago)
families = TablesCollector().collect()
sizes = {(m.name, s.labels["table"]): s.value for m in families for s in m.samples}
assert sizes[("messaging_table_rows", "outbox")] == OutboxMessage.objects.count(), sizes
assert sizes[("messaging_table_oldest_row_age_seconds", "inbox")] > 29 * 86400, sizes
unsent = OutboxMessage.objects.filter(sent_at__isnull=True).count()
job = PruneJob(interval=60, batch=2)
while job.work():
    pass
assert OutboxMessage.objects.count() == unsent and InboxMessage.objects.count() == 0
print("sqlite ok", round(latency, 3))
"""


def test_outbox_relay_and_inbox_work_on_sqlite(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}
    }
    prefix = f"test-{uuid.uuid4().hex[:12]}."
    env.update(
        VAR_DIR=str(tmp_path),
        AMQP_URL=AMQP_URL,
        MESSAGING_PREFIX=prefix,
        MESSAGING_RETRY_DELAYS_MS=",".join(str(ms) for ms in RETRY_DELAYS_MS),  # what we delete
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    try:
        result = subprocess.run(
            [sys.executable, "-c", SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            timeout=45,
            check=False,
        )
    finally:
        Broker(prefix).close()  # deletes the child's layout even when it failed half-way
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sqlite ok" in result.stdout
    assert (tmp_path / "orders.sqlite3").exists()
