"""Warehouses, step 2 of 3: everything kept so far was in one place, now the default warehouse.

Each product's counters become its counters there, every ledger entry names it, and every
reservation that held stock records its lines as held there, so that releasing or shipping an
order reserved before the upgrade gives back exactly what it took. Reversible: going back sums
each product's rows into its single counters (stock kept elsewhere by then is counted too).
"""

from django.db import migrations

CODE, NAME = "default", "Default warehouse"
HELD = ("RESERVED", "RELEASED", "SHIPPED")  # the statuses of reservations that took stock
CHUNK = 2000


def forwards(apps, schema_editor):
    warehouse_model = apps.get_model("stock", "Warehouse")
    old = apps.get_model("stock", "StockLevel")._meta.db_table
    new = apps.get_model("stock", "WarehouseStockLevel")._meta.db_table
    ledger = apps.get_model("stock", "StockLedgerEntry")
    reservation_model = apps.get_model("stock", "Reservation")
    warehouse, _ = warehouse_model.objects.get_or_create(
        code=CODE, defaults={"name": NAME, "priority": 0, "active": True}
    )
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {new} (product_id, warehouse_id, on_hand, reserved)"  # noqa: S608
            f" SELECT product_id, %s, on_hand, reserved FROM {old} ORDER BY product_id",
            [warehouse.pk],
        )
    ledger.objects.filter(warehouse__isnull=True).update(warehouse=warehouse)
    held = reservation_model.objects.filter(status__in=HELD).order_by("pk")
    batch = []
    for reservation in held.only("pk", "lines").iterator(chunk_size=CHUNK):
        reservation.allocations = [
            {
                "product_id": int(line["product_id"]),
                "warehouse_id": warehouse.pk,
                "quantity": int(line["quantity"]),
            }
            for line in reservation.lines
        ]
        batch.append(reservation)
        if len(batch) == CHUNK:
            reservation_model.objects.bulk_update(batch, ["allocations"])
            batch = []
    reservation_model.objects.bulk_update(batch, ["allocations"])


def backwards(apps, schema_editor):
    old = apps.get_model("stock", "StockLevel")._meta.db_table
    new = apps.get_model("stock", "WarehouseStockLevel")._meta.db_table
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {old} (product_id, on_hand, reserved)"  # noqa: S608
            f" SELECT product_id, SUM(on_hand), SUM(reserved) FROM {new}"
            " GROUP BY product_id ORDER BY product_id"
        )


class Migration(migrations.Migration):
    dependencies = [("stock", "0002_warehouses")]

    operations = [migrations.RunPython(forwards, backwards)]
