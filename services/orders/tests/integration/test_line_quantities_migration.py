"""The upgrade to shipped and cancelled quantities on orders written before it: the lines of a
SHIPPED order shipped every unit, those of a CANCELLED or REJECTED order cancelled every one,
and the others neither."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from orders.models import OrderLine

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("orders", "0003_shipments")]
AFTER = [("orders", "0004_line_quantities_of_final_orders")]


def migrate(targets: list[tuple[str, str]]) -> Any:
    """The database migrated to ``targets``; the models as they were there."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def before() -> Iterator[Any]:
    """The orders as they were before the data migration; brought up to date afterwards."""
    try:
        yield migrate(BEFORE)
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def test_final_orders_count_their_units_shipped_or_cancelled(before: Any) -> None:
    order_model, line_model = (
        before.get_model("orders", "Order"),
        before.get_model("orders", "OrderLine"),
    )
    now = timezone.now()
    ids: dict[str, uuid.UUID] = {}
    for status in ("PENDING", "CONFIRMED", "SHIPPED", "CANCELLED", "REJECTED"):
        order = order_model.objects.create(
            user_id=1,
            status=status,
            total=Decimal("10.00"),
            idempotency_key=status,
            request_fingerprint="f",
            deadline=now + timedelta(minutes=15),
        )
        ids[status] = order.id
        priced = {"sku": "S", "name": "n", "unit_price": Decimal("1.00")}
        line_model.objects.bulk_create(
            [
                line_model(order=order, product_id=p, quantity=q, line_total=q, **priced)
                for p, q in ((1, 3), (2, 1))
            ]
        )

    migrate(AFTER)

    def counted(status: str) -> list[tuple[int, int, int]]:
        return list(
            OrderLine.objects.filter(order_id=ids[status])
            .order_by("product_id")
            .values_list("quantity", "shipped_quantity", "cancelled_quantity")
        )

    assert counted("PENDING") == counted("CONFIRMED") == [(3, 0, 0), (1, 0, 0)]
    assert counted("SHIPPED") == [(3, 3, 0), (1, 1, 0)]
    assert counted("CANCELLED") == counted("REJECTED") == [(3, 0, 3), (1, 0, 1)]

    migrate(BEFORE)  # and back: no counts
    assert set(OrderLine.objects.values_list("shipped_quantity", "cancelled_quantity")) == {(0, 0)}
