"""Warehouses, step 3 of 3: the per-warehouse counters replace the per-product ones, with the
same CHECK constraints on each row, and every ledger entry names its warehouse."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("stock", "0003_move_stock_to_default_warehouse")]

    operations = [
        migrations.DeleteModel(name="StockLevel"),
        migrations.RenameModel(old_name="WarehouseStockLevel", new_name="StockLevel"),
        migrations.AddConstraint(
            model_name="stocklevel",
            constraint=models.UniqueConstraint(
                fields=("product", "warehouse"), name="stock_one_level_per_warehouse"
            ),
        ),
        migrations.AddConstraint(
            model_name="stocklevel",
            constraint=models.CheckConstraint(
                condition=models.Q(("on_hand__gte", 0)), name="stock_on_hand_not_negative"
            ),
        ),
        migrations.AddConstraint(
            model_name="stocklevel",
            constraint=models.CheckConstraint(
                condition=models.Q(("reserved__gte", 0)), name="stock_reserved_not_negative"
            ),
        ),
        migrations.AddConstraint(
            model_name="stocklevel",
            constraint=models.CheckConstraint(
                condition=models.Q(("reserved__lte", models.F("on_hand"))),
                name="stock_reserved_within_on_hand",
            ),
        ),
        migrations.AlterField(
            model_name="stockledgerentry",
            name="warehouse",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="stock_ledger",
                to="stock.warehouse",
            ),
        ),
        migrations.AddIndex(
            model_name="stockledgerentry",
            index=models.Index(
                fields=["product", "warehouse", "-id"], name="ledger_by_warehouse"
            ),
        ),
    ]
