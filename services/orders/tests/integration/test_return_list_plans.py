"""GET /api/returns/ on a few thousand returns: every statement reads a few rows through an
index, never a whole table, whatever the filter and the page."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from orders.models import Order, Return, ReturnLine, ReturnStatus
from orders.return_apis import ReturnPagination
from service_runtime import query_plans
from service_runtime.query_plans import statements
from tests.factories import CUSTOMER_ID

pytestmark = pytest.mark.django_db

RETURNS = 3000
READ_LIMIT = 250  # the count stops at 100, a page is 50 returns and their lines


@pytest.fixture
def many_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    now = timezone.now()
    order = Order.objects.create(
        id=uuid.uuid4(),
        user_id=CUSTOMER_ID,
        total=Decimal("10.00"),
        idempotency_key="k",
        request_fingerprint="f",
        deadline=now,
    )
    returns = [
        Return(order=order, user_id=CUSTOMER_ID, status=ReturnStatus.REQUESTED)
        if i % 10 == 0
        else Return(
            order=order,
            user_id=CUSTOMER_ID,
            status=ReturnStatus.RECEIVED,
            warehouse="default",
            refund_amount=Decimal("5.00"),
            received_at=now,
        )
        for i in range(RETURNS)
    ]
    Return.objects.bulk_create(returns)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE orders_return SET requested_at = requested_at - random() * interval '90 days'"
        )
    ReturnLine.objects.bulk_create(
        ReturnLine(
            return_request=returned,
            product_id=1,
            sku="SKU-1",
            name="a product",
            unit_price=Decimal("5.00"),
            quantity=1,
        )
        for returned in returns
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Return._meta.db_table}, {ReturnLine._meta.db_table}")
    monkeypatch.setattr(ReturnPagination, "count_limit", 100)


@pytest.mark.usefixtures("many_returns")
@pytest.mark.parametrize("query", ["", "?status=REQUESTED", "?status=RECEIVED&page_size=200"])
def test_staffs_lists_read_an_index(staff: APIClient, query: str) -> None:
    for url in (f"/api/returns/{query}", staff.get(f"/api/returns/{query}").json()["next"]):
        with statements() as run:
            response = staff.get(url)
        assert response.status_code == 200, response.content
        assert len(run) == 3  # the count, the page, its lines
        assert query_plans.most_rows_read(run) <= READ_LIMIT
