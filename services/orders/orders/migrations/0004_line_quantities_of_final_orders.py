"""The lines of orders that ended before lines counted shipped and cancelled units: every unit
of a SHIPPED order shipped, every unit of a CANCELLED or REJECTED order was cancelled."""

from django.db import migrations
from django.db.models import F


def forwards(apps, schema_editor):  # type: ignore[no-untyped-def]
    OrderLine = apps.get_model("orders", "OrderLine")
    OrderLine.objects.filter(order__status="SHIPPED").update(shipped_quantity=F("quantity"))
    OrderLine.objects.filter(order__status__in=("CANCELLED", "REJECTED")).update(
        cancelled_quantity=F("quantity")
    )


def backwards(apps, schema_editor):  # type: ignore[no-untyped-def]
    OrderLine = apps.get_model("orders", "OrderLine")
    OrderLine.objects.update(shipped_quantity=0, cancelled_quantity=0)


class Migration(migrations.Migration):
    dependencies = [("orders", "0003_shipments")]

    operations = [migrations.RunPython(forwards, backwards)]
