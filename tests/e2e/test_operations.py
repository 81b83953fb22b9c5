"""Health, metrics and worker readiness of the running system, as an operator sees them."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from devstack.system import SERVICES
from tests.e2e.client import Api
from tests.e2e.conftest import E2E


def metrics(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = requests.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def total(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    wanted = set(labels.items())
    return sum(value for (n, got), value in samples.items() if n == name and wanted <= got)


class TestHealth:
    def test_every_service_is_live_and_ready(self, e2e: E2E) -> None:
        for service in SERVICES:
            url = e2e.system.url(service.name)
            assert requests.get(f"{url}/health/live", timeout=10).status_code == 200
            ready = requests.get(f"{url}/health/ready", timeout=10)
            assert ready.status_code == 200, ready.text
            assert set(ready.json()["checks"]) == {"database", "migrations", "broker"}

    def test_every_worker_beats(self, e2e: E2E) -> None:
        for service in SERVICES:
            roles = [worker.role for worker in e2e.system.workers_of(service.name)]
            result = e2e.system.manage(service, "worker_health", *roles, "--max-age", "30")
            assert result.returncode == 0, result.stdout + result.stderr


class TestMetrics:
    def test_the_web_server_shows_its_workers_figures(
        self, e2e: E2E, staff: Api, customer: Api
    ) -> None:
        product = staff.create_product(stock=5)
        response = customer.place_order([{"product_id": product["id"], "quantity": 1}])
        assert response.status_code == 202, response.text
        customer.wait_for_status(response.json()["id"], {"CONFIRMED"})

        orders = metrics(e2e.system.url("orders"))
        queue = f"{e2e.prefix}orders"
        # Counted by the orders workers (consumer and relay), processes apart from the web server.
        assert total(orders, "messaging_messages_consumed_total", queue=queue) >= 2
        assert total(orders, "messaging_messages_published_total", type="order.created") >= 1
        assert total(orders, "orders_outcomes_total", outcome="confirmed") >= 1
        assert total(orders, "orders_reservation_latency_seconds_count", outcome="confirmed") >= 1
        assert total(orders, "orders_placed_total") >= 1
        assert ("messaging_outbox_unsent_messages", frozenset()) in orders
        assert total(orders, "http_requests_total", route="/api/orders/", method="POST") >= 1

        inventory = metrics(e2e.system.url("inventory"))
        assert total(inventory, "inventory_reservation_duration_seconds_count") >= 1
