from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import models


class ProductReplica(models.Model):
    """Inventory's product as last announced by ``product.upserted``; read-only here.

    ``source_occurred_at`` is the ``occurred_at`` of the event that wrote this version, so an
    event older than the stored one (redelivered, or overtaken) never overwrites it.
    """

    product_id: models.BigIntegerField[int, int] = models.BigIntegerField(primary_key=True)
    sku: models.CharField[str, str] = models.CharField(max_length=64)
    name: models.CharField[str, str] = models.CharField(max_length=200)
    price: models.DecimalField[Decimal, Decimal] = models.DecimalField(
        max_digits=12, decimal_places=2
    )
    active: models.BooleanField[bool, bool] = models.BooleanField()
    category: models.CharField[str, str] = models.CharField(max_length=100, blank=True, default="")
    source_occurred_at: models.DateTimeField[datetime, datetime] = models.DateTimeField()
    updated_at: models.DateTimeField[datetime, datetime] = models.DateTimeField()

    class Meta:
        db_table = "product_replica"
        constraints = [
            models.CheckConstraint(condition=models.Q(price__gte=0), name="replica_price_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} ({self.product_id})"
