"""``/metrics``: HTTP figures by route, consumer outcomes, outbox backlog, and the adding up of
every process's samples in multi-process mode."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from messaging.consumer import Consumer
from messaging.models import OutboxMessage
from messaging.worker import Heartbeat, Worker
from service_runtime.metrics import UNMATCHED_ROUTE
from tests.factories import body, raw_envelope
from tests.integration.conftest import Broker, running, wait_for

LIBS = Path(__file__).resolve().parents[2]


def scrape(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: (name, sorted labels) → value."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(autouse=True)
def single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)


@pytest.mark.django_db
@pytest.mark.urls("tests.ops_urls")
class TestHttpMetrics:
    def test_requests_are_counted_under_their_url_pattern(self, client: Client) -> None:
        before = scrape(client)
        client.get("/things/1/")
        client.get("/things/2/")
        client.get("/no/such/path/")
        after = scrape(client)
        route = "/things/<int:thing_id>/"
        counted = dict(method="GET", route=route, status="200")
        assert (
            value(after, "http_requests_total", **counted)
            - value(before, "http_requests_total", **counted)
            == 2
        )
        unmatched = dict(method="GET", route=UNMATCHED_ROUTE, status="404")
        assert value(after, "http_requests_total", **unmatched) > value(
            before, "http_requests_total", **unmatched
        )
        assert value(after, "http_request_duration_seconds_count", method="GET", route=route) >= 2
        assert not any("/things/1/" in dict(labels).get("route", "") for _, labels in after)

    def test_the_outbox_backlog_and_its_age(self, client: Client) -> None:
        for index in range(3):
            OutboxMessage.objects.create(
                message_id=f"00000000-0000-4000-8000-00000000000{index}",
                exchange="x",
                routing_key="order.created",
                body="{}",
                correlation_id="c",
            )
        OutboxMessage.objects.filter(message_id__endswith="0").update(
            created_at=timezone.now() - timedelta(minutes=5)
        )
        OutboxMessage.objects.filter(message_id__endswith="2").update(sent_at=timezone.now())
        samples = scrape(client)
        assert value(samples, "messaging_outbox_unsent_messages") == 2
        assert 290 < value(samples, "messaging_outbox_oldest_unsent_age_seconds") < 600


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
@pytest.mark.urls("tests.ops_urls")
class TestConsumerMetrics:
    @pytest.fixture(autouse=True)
    def inventory_service(self, settings: Any, broker: Broker) -> None:
        settings.MESSAGING_SERVICE = "inventory"
        settings.MESSAGING_PREFIX = broker.prefix
        broker.declare()

    def test_consumed_and_dead_lettered_messages_per_queue(
        self, client: Client, broker: Broker, tmp_path: Path
    ) -> None:
        queue = broker.names.queue("inventory")
        consumer = Consumer({"order.created": lambda e: None}, broker.config("inventory"))
        with running(Worker([consumer], Heartbeat(tmp_path / "heartbeat", every=0))):
            broker.publish_event("order.created", body(raw_envelope()))
            broker.publish_event("order.created", b"{not json")
            wait_for(lambda: consumer.handled == 2)
            wait_for(lambda: (tmp_path / "heartbeat").exists())  # ready while consuming
        samples = scrape(client)
        assert value(samples, "messaging_messages_consumed_total", queue=queue) == 1
        assert value(samples, "messaging_messages_dead_lettered_total", queue=queue) == 1
        assert value(samples, "messaging_messages_retried_total", queue=queue) == 0
        assert value(samples, "messaging_handler_duration_seconds_count", queue=queue) == 2


_WORKER = textwrap.dedent(
    """
    import django
    django.setup()
    from messaging.metrics import record_delivery
    record_delivery("orders", "ack", 0.01)
    record_delivery("orders", "dead", 0.02)
    """
)


@pytest.mark.django_db
@pytest.mark.urls("tests.ops_urls")
class TestMultiProcess:
    def test_metrics_of_every_process_are_added_up(
        self, client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        env = {
            **os.environ,
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
            "DJANGO_SETTINGS_MODULE": "tests.settings",
        }
        for _ in range(2):  # two processes, as a consumer and a gunicorn worker would be
            subprocess.run([sys.executable, "-c", _WORKER], cwd=LIBS, env=env, check=True)
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
        samples = scrape(client)
        assert value(samples, "messaging_messages_consumed_total", queue="orders") == 2
        assert value(samples, "messaging_messages_dead_lettered_total", queue="orders") == 2
        assert value(samples, "messaging_handler_duration_seconds_count", queue="orders") == 4
        assert value(samples, "messaging_outbox_unsent_messages") == 0  # scrape-time collector
