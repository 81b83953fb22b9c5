"""POST /api/orders/ counts against the user's THROTTLE_ORDERS_PER_USER: over it, a 429 in the
API's error shape with ``Retry-After``, and nothing is written."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from messaging.models import OutboxMessage
from orders.models import Order
from service_runtime.rates import Rate

URL = "/api/orders/"
LINES = {"lines": [{"product_id": 1, "quantity": 1}]}
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def place(client: APIClient, n: int) -> int:
    return int(client.post(URL, LINES, format="json", HTTP_IDEMPOTENCY_KEY=f"rate-{n}").status_code)


def test_orders_over_the_rate_are_refused_and_write_nothing(
    settings: object, customer: APIClient, other_customer: APIClient, products: dict
) -> None:
    settings.THROTTLE_ORDERS_PER_USER = Rate(5, 3600)  # type: ignore[attr-defined]
    assert [place(customer, n) for n in range(5)] == [202] * 5
    orders, events = Order.objects.count(), OutboxMessage.objects.count()

    with CaptureQueriesContext(connection) as queries:
        response = customer.post(URL, LINES, format="json", HTTP_IDEMPOTENCY_KEY="rate-over")
    assert response.status_code == 429, response.content
    assert response.json()["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 3600
    assert len(queries) == 0  # refused before the database
    assert (Order.objects.count(), OutboxMessage.objects.count()) == (orders, events)
    assert place(other_customer, 0) == 202  # the limit is per user
