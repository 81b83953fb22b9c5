"""``/health/live`` and ``/health/ready`` against the real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from messaging import health as broker_health
from service_runtime import health

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.ops_urls")]


@pytest.fixture(autouse=True)
def fresh_broker_answers() -> Iterator[None]:
    broker_health.broker_check.forget()
    yield
    broker_health.broker_check.forget()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # bound, never listening: connections are refused


def ready(client: Client, query: str = "") -> tuple[int, dict[str, Any]]:
    response = client.get(f"/health/ready{query}")
    return response.status_code, response.json()


class TestLive:
    def test_answers_200_without_a_token(self, client: Client) -> None:
        response = client.get("/health/live")
        assert response.status_code == 200
        assert response.json()["status"] == "ok"


@pytest.mark.broker
class TestReady:
    def test_every_dependency_ok_is_200(self, client: Client) -> None:
        status, body = ready(client)
        assert status == 200, body
        assert body["status"] == "ok"
        assert {name: check["status"] for name, check in body["checks"].items()} == {
            "database": "ok",
            "migrations": "ok",
            "broker": "ok",
        }

    def test_an_unreachable_broker_is_503_and_named(self, client: Client, settings: Any) -> None:
        settings.MESSAGING_BROKER_URL = f"amqp://guest:guest@127.0.0.1:{closed_port()}/%2F"
        status, body = ready(client)
        assert status == 503
        assert body["status"] == "unavailable"
        assert body["checks"]["broker"]["status"] == "error"
        assert body["checks"]["broker"]["error"]
        assert body["checks"]["database"]["status"] == "ok"
        assert body["checks"]["migrations"]["status"] == "ok"

    def test_except_broker_reports_it_but_answers_200(self, client: Client, settings: Any) -> None:
        settings.MESSAGING_BROKER_URL = f"amqp://guest:guest@127.0.0.1:{closed_port()}/%2F"
        status, body = ready(client, "?except=broker")
        assert status == 200
        assert body["checks"]["broker"]["status"] == "error"

    def test_an_unapplied_migration_is_503_and_named(self, client: Client) -> None:
        with connection.cursor() as cursor:  # rolled back with the test's transaction
            cursor.execute("DELETE FROM django_migrations WHERE app = 'messaging'")
        status, body = ready(client)
        assert status == 503
        migrations = body["checks"]["migrations"]
        assert migrations["status"] == "error"
        assert "messaging.0001_initial" in migrations["unapplied"]
        assert body["checks"]["database"]["status"] == "ok"

    def test_a_database_down_skips_the_migration_check(
        self, client: Client, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(
            health, "check_database", lambda: health.CheckResult(False, "OperationalError: down")
        )
        status, body = ready(client)
        assert status == 503
        assert body["checks"]["database"] == {"status": "error", "error": "OperationalError: down"}
        assert body["checks"]["migrations"]["status"] == "error"


class TestBrokerCheck:
    def test_a_storm_of_probes_connects_once_per_ttl(self, monkeypatch: pytest.MonkeyPatch) -> None:
        calls: list[str] = []

        def problem(url: str, timeout: float) -> str | None:
            calls.append(url)
            return None

        monkeypatch.setattr(broker_health, "broker_problem", problem)
        check = broker_health.BrokerCheck()
        results = [check("amqp://x", ttl=60) for _ in range(50)]
        assert all(result.ok for result in results)
        assert calls == ["amqp://x"]
        assert check("amqp://x", ttl=0).ok and len(calls) == 2

    def test_the_failure_is_the_answer_not_an_exception(self) -> None:
        result = broker_health.BrokerCheck()(
            f"amqp://guest:guest@127.0.0.1:{closed_port()}/%2F", ttl=0
        )
        assert not result.ok
        assert result.error


class TestProbesByAddress:
    def test_a_pod_ip_host_is_answered(self, client: Client) -> None:
        # Prometheus and kubelets name the pod by its IP, which ALLOWED_HOSTS does not list.
        assert client.get("/health/live", HTTP_HOST="10.1.2.3:8001").status_code == 200
        assert client.get("/metrics", HTTP_HOST="10.1.2.3:8001").status_code == 200
        assert client.get("/things/1/", HTTP_HOST="10.1.2.3:8001").status_code == 400
