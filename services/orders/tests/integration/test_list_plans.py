"""GET /api/orders/ on a few thousand orders: every statement reads a few rows through an
index, never a whole table, whoever asks and whatever the filter, on any page."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from orders.apis import OrderPagination
from orders.models import Order, OrderLine, OrderStatus
from service_runtime import query_plans
from service_runtime.query_plans import statements
from tests.factories import CUSTOMER_ID

pytestmark = pytest.mark.django_db

ORDERS = 3000
CUSTOMERS = 7  # CUSTOMER_ID among them: about 430 orders each
# What a page may read of each table: its count stops at the limit (100 here), the page 50
# orders and their lines. A table read whole is 3000 orders or 6000 lines, a customer's own
# orders about 430.
READ_LIMIT = 250


@pytest.fixture
def many_orders(monkeypatch: pytest.MonkeyPatch) -> None:
    now = timezone.now()
    statuses = [OrderStatus.CONFIRMED] * 8 + [OrderStatus.SHIPPED, OrderStatus.REJECTED]
    orders = [
        Order(
            id=uuid.uuid4(),
            user_id=CUSTOMER_ID + i % CUSTOMERS,
            status=statuses[i % len(statuses)],
            total=Decimal("10.00"),
            idempotency_key=f"k{i}",
            request_fingerprint="f",
            deadline=now,
        )
        for i in range(ORDERS)
    ]
    Order.objects.bulk_create(orders)
    # Spread over a year, as history would be (created_at is auto_now_add on insert).
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE orders_order SET created_at = created_at - random() * interval '365 days'"
        )
    OrderLine.objects.bulk_create(
        OrderLine(
            order=order,
            product_id=product_id,
            sku=f"SKU-{product_id}",
            name="a product",
            unit_price=Decimal("5.00"),
            quantity=1,
            line_total=Decimal("5.00"),
        )
        for order in orders
        for product_id in (1, 2)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Order._meta.db_table}, {OrderLine._meta.db_table}")
    # A smaller count limit, so that counting stops well inside a few thousand rows, as its
    # real limit does inside a million.
    monkeypatch.setattr(OrderPagination, "count_limit", 100)


def most_rows_read(client: APIClient, url: str) -> int:
    """The most rows any statement of the request read from one table."""
    with statements() as run:
        response = client.get(url)
    assert response.status_code == 200, response.content
    assert len(run) == 2  # count, the page with its lines
    return query_plans.most_rows_read(run)


@pytest.mark.usefixtures("many_orders")
class TestEveryListReadsAnIndex:
    @pytest.mark.parametrize(
        "query", ["", "?status=SHIPPED", "?status=CONFIRMED", "?status=REJECTED&page_size=200"]
    )
    def test_a_customers_own(self, customer: APIClient, query: str) -> None:
        assert most_rows_read(customer, f"/api/orders/{query}") <= READ_LIMIT

    @pytest.mark.parametrize(
        "query",
        [
            "",
            "?status=CONFIRMED",
            "?status=REJECTED",
            f"?user_id={CUSTOMER_ID + 3}",
            f"?user_id={CUSTOMER_ID + 3}&status=SHIPPED",
        ],
    )
    def test_staffs(self, staff: APIClient, query: str) -> None:
        assert most_rows_read(staff, f"/api/orders/{query}") <= READ_LIMIT

    def test_a_later_page(self, staff: APIClient, customer: APIClient) -> None:
        for client in (staff, customer):
            first = client.get("/api/orders/?status=CONFIRMED&page_size=20").json()
            assert most_rows_read(client, first["next"]) <= READ_LIMIT

    def test_the_count_stops_at_its_limit(self, customer: APIClient, staff: APIClient) -> None:
        mine = Order.objects.filter(user_id=CUSTOMER_ID)
        shipped = mine.filter(status=OrderStatus.SHIPPED).count()
        assert mine.count() > OrderPagination.count_limit >= shipped > 0

        assert customer.get("/api/orders/").json()["count"] is None
        assert staff.get("/api/orders/").json()["count"] is None
        assert customer.get("/api/orders/?status=SHIPPED").json()["count"] == shipped


def test_pages_follow_each_other_without_gaps_or_repeats(
    many_orders: None, customer: APIClient, staff: APIClient
) -> None:
    def walk(client: APIClient, url: str) -> list[Any]:
        seen: list[Any] = []
        while url:
            page = client.get(url).json()
            seen += [o["id"] for o in page["results"]]
            url = page["next"]
        return seen

    mine = walk(customer, "/api/orders/?page_size=7")
    expected = Order.objects.filter(user_id=CUSTOMER_ID).order_by("-created_at", "-id")
    assert mine == [str(pk) for pk in expected.values_list("id", flat=True)]

    last = staff.get("/api/orders/?status=SHIPPED&page_size=40").json()
    while last["next"]:
        last = staff.get(last["next"]).json()
    back = staff.get(last["previous"]).json()
    everything = walk(staff, "/api/orders/?status=SHIPPED&page_size=40")
    assert [o["id"] for o in back["results"]] == everything[
        -40 - len(last["results"]) : -len(last["results"])
    ]
