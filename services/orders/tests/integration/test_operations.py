"""What operators and API clients get besides the API: health, metrics, the OpenAPI schema."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from orders.handlers import on_stock_reserved
from tests.factories import stock_event

pytestmark = pytest.mark.django_db


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class TestOrderMetrics:
    def test_placed_confirmed_and_the_reservation_latency(
        self,
        customer: APIClient,
        products: dict[int, Any],
        django_capture_on_commit_callbacks: Callable[..., Any],
    ) -> None:
        placed = sample("orders_placed_total")
        confirmed = sample("orders_outcomes_total", outcome="confirmed")
        latency = sample("orders_reservation_latency_seconds_count", outcome="confirmed")
        with django_capture_on_commit_callbacks(execute=True):
            response = customer.post(
                "/api/orders/",
                {"lines": [{"product_id": 1, "quantity": 1}]},
                format="json",
                HTTP_IDEMPOTENCY_KEY="metrics-1",
            )
            assert response.status_code == 202, response.content
            lines = [{"product_id": 1, "quantity": 1}]
            on_stock_reserved(stock_event("stock.reserved", response.json()["id"], lines=lines))
        assert sample("orders_placed_total") == placed + 1
        assert sample("orders_outcomes_total", outcome="confirmed") == confirmed + 1
        assert (
            sample("orders_reservation_latency_seconds_count", outcome="confirmed") == latency + 1
        )

    def test_metrics_are_served_without_a_token(self) -> None:
        response = APIClient().get("/metrics")
        assert response.status_code == 200
        assert b"orders_placed_total" in response.content


class TestOpenApiSchema:
    def test_the_schema_is_valid_and_complete(self, tmp_path: Path) -> None:
        call_command(
            "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yaml")
        )

    def test_the_idempotency_key_and_the_bearer_scheme_are_described(self) -> None:
        schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()
        place = schema["paths"]["/api/orders/"]["post"]
        header = next(p for p in place["parameters"] if p["name"] == "Idempotency-Key")
        assert header["in"] == "header" and header["required"] is True
        assert {"200", "202", "400", "401", "422"} <= set(place["responses"])
        assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
