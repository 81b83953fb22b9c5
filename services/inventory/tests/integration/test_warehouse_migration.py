"""The upgrade to warehouses on data written before it: every counter, ledger entry and
reservation lands in the default warehouse, so the stock means what it meant."""

import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from stock.handlers import on_order_cancelled, on_order_shipped
from stock.models import Reservation, StockLedgerEntry, StockLevel, Warehouse
from stock.selectors import stock_ledger_mismatches
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("stock", "0001_initial")]
AFTER = [("stock", "0004_stock_per_warehouse")]


def migrate(targets):
    """The database migrated to ``targets``; the apps (models) as they were there."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def before_warehouses():
    """The database as it was before warehouses; brought back up to date afterwards."""
    try:
        yield migrate(BEFORE)
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def test_existing_stock_ledger_and_reservations_move_to_the_default_warehouse(before_warehouses):
    old = before_warehouses
    product_model = old.get_model("catalogue", "Product")
    hammer, nails = (
        product_model.objects.create(sku=sku, name=sku, price=Decimal("1.00"))
        for sku in ("HAM", "NAIL")
    )
    old.get_model("stock", "StockLevel").objects.bulk_create(
        [
            old.get_model("stock", "StockLevel")(product=hammer, on_hand=10, reserved=5),
            old.get_model("stock", "StockLevel")(product=nails, on_hand=4, reserved=0),
        ]
    )
    ledger = old.get_model("stock", "StockLedgerEntry")
    kept, shipped, rejected = (str(uuid.uuid4()) for _ in range(3))
    ledger.objects.bulk_create(
        [
            ledger(product=hammer, kind="adjustment", delta_on_hand=12, reason="delivery"),
            ledger(product=hammer, kind="adjustment", delta_on_hand=-2, reason="broken"),
            ledger(product=hammer, kind="reserve", delta_reserved=3, reason="o", order_id=kept),
            ledger(product=hammer, kind="reserve", delta_reserved=2, reason="o", order_id=shipped),
            ledger(product=nails, kind="adjustment", delta_on_hand=4, reason="delivery"),
        ]
    )
    reservation = old.get_model("stock", "Reservation")
    reservation.objects.bulk_create(
        [
            reservation(
                order_id=kept, status="RESERVED", lines=[{"product_id": hammer.pk, "quantity": 3}]
            ),
            reservation(
                order_id=shipped,
                status="RESERVED",
                lines=[{"product_id": hammer.pk, "quantity": 2}],
            ),
            reservation(
                order_id=rejected,
                status="REJECTED",
                lines=[{"product_id": nails.pk, "quantity": 9}],
                reason="1 of 1 lines cannot be reserved: product 2: only 4 available",
            ),
        ]
    )

    migrate(AFTER)

    default = Warehouse.objects.get()
    assert (default.code, default.name, default.priority, default.active) == (
        "default",
        "Default warehouse",
        0,
        True,
    )
    levels = StockLevel.objects.order_by("product_id")
    assert [(s.product_id, s.warehouse_id, s.on_hand, s.reserved) for s in levels] == [
        (hammer.pk, default.pk, 10, 5),
        (nails.pk, default.pk, 4, 0),
    ]
    assert set(StockLedgerEntry.objects.values_list("warehouse_id", flat=True)) == {default.pk}
    assert StockLedgerEntry.objects.count() == 5
    # Read as the columns stood then: later migrations add columns to the reservation.
    held = {o.hex: a for o, a in Reservation.objects.values_list("order_id", "allocations")}
    assert held == {
        uuid.UUID(kept).hex: [{"product_id": hammer.pk, "warehouse_id": default.pk, "quantity": 3}],
        uuid.UUID(shipped).hex: [
            {"product_id": hammer.pk, "warehouse_id": default.pk, "quantity": 2}
        ],
        uuid.UUID(rejected).hex: [],
    }
    assert stock_ledger_mismatches() == []

    # what was reserved before the upgrade is released and shipped from where it now is, by
    # today's code on today's tables
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    on_order_cancelled(factories.order_cancelled(kept))
    on_order_shipped(factories.order_shipped(shipped))

    hammer_stock = StockLevel.objects.get(product_id=hammer.pk)
    assert (hammer_stock.on_hand, hammer_stock.reserved) == (8, 0)
    assert stock_ledger_mismatches() == []


def test_the_upgrade_can_be_rolled_back_with_the_stock_summed_per_product(before_warehouses):
    old = before_warehouses
    hammer = old.get_model("catalogue", "Product").objects.create(
        sku="HAM", name="Hammer", price=Decimal("1.00")
    )
    old.get_model("stock", "StockLevel").objects.create(product=hammer, on_hand=7, reserved=2)
    migrate(AFTER)
    east = Warehouse.objects.create(code="east", name="East")
    StockLevel.objects.create(product_id=hammer.pk, warehouse=east, on_hand=3, reserved=1)

    old = migrate(BEFORE)

    stock = old.get_model("stock", "StockLevel").objects.get(product_id=hammer.pk)
    assert (stock.on_hand, stock.reserved) == (10, 3)
