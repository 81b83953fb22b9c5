"""The upgrade to backorders and returns on orders written before it: nothing returned,
nothing refunded, and the way back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from orders.models import Order, OrderLine
from tests.integration.test_line_quantities_migration import migrate

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("orders", "0004_line_quantities_of_final_orders")]
AFTER = [("orders", "0005_backorders_and_returns")]


@pytest.fixture
def before() -> Iterator[Any]:
    """The orders as they were before returns; brought up to date afterwards."""
    try:
        yield migrate(BEFORE)
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def test_orders_before_it_returned_and_refunded_nothing(before: Any) -> None:
    order_model, line_model = (
        before.get_model("orders", "Order"),
        before.get_model("orders", "OrderLine"),
    )
    order = order_model.objects.create(
        user_id=1,
        status="SHIPPED",
        total=Decimal("3.00"),
        idempotency_key="k",
        request_fingerprint="f",
        deadline=timezone.now() + timedelta(minutes=15),
    )
    line_model.objects.create(
        order=order,
        product_id=1,
        sku="S",
        name="n",
        unit_price=Decimal("1.00"),
        quantity=3,
        line_total=Decimal("3.00"),
        shipped_quantity=3,
    )

    migrate(AFTER)

    assert Order.objects.get(pk=order.id).refunded_total == Decimal("0.00")
    assert OrderLine.objects.get(order_id=order.id).returned_quantity == 0

    migrate(BEFORE)  # and back
    assert order_model.objects.filter(pk=order.id).exists()
