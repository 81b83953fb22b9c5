"""Warehouses, step 1 of 3: the new tables and columns, beside the old per-product counters.

0003 moves the existing stock, ledger and reservations into the default warehouse; 0004 drops
the old counters. Three migrations, so that no schema change shares a transaction with the
rows written before it (PostgreSQL refuses to alter a table with pending trigger events).
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("catalogue", "0002_list_indexes"),
        ("stock", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="Warehouse",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("code", models.SlugField(max_length=32, unique=True)),
                ("name", models.CharField(max_length=100)),
                ("active", models.BooleanField(default=True)),
                ("priority", models.IntegerField(default=0)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={"ordering": ["-priority", "id"]},
        ),
        # Renamed to StockLevel by 0004, once the old table is gone.
        migrations.CreateModel(
            name="WarehouseStockLevel",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("on_hand", models.IntegerField(default=0)),
                ("reserved", models.IntegerField(default=0)),
                (
                    "product",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="stock_levels",
                        to="catalogue.product",
                    ),
                ),
                (
                    "warehouse",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="stock_levels",
                        to="stock.warehouse",
                    ),
                ),
            ],
        ),
        migrations.AddField(
            model_name="stockledgerentry",
            name="warehouse",
            field=models.ForeignKey(
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="stock_ledger",
                to="stock.warehouse",
            ),
        ),
        migrations.AlterField(
            model_name="stockledgerentry",
            name="kind",
            field=models.CharField(
                choices=[
                    ("adjustment", "Adjustment"),
                    ("reserve", "Reserve"),
                    ("release", "Release"),
                    ("ship", "Ship"),
                    ("transfer", "Transfer"),
                ],
                max_length=20,
            ),
        ),
        migrations.AddField(
            model_name="reservation",
            name="allocations",
            field=models.JSONField(default=list),
        ),
    ]
