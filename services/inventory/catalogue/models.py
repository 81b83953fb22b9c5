from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db import models
from django.db.models import Q

if TYPE_CHECKING:
    from django.db.models.fields.related_descriptors import RelatedManager

    from stock.models import StockLevel


class Category(models.Model):
    name: models.CharField[str, str] = models.CharField(max_length=100, unique=True)
    description: models.TextField[str, str] = models.TextField(blank=True, default="")

    products: RelatedManager[Product]

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    """A thing we sell; its stock lives in :class:`stock.models.StockLevel`, a row per
    warehouse."""

    sku: models.CharField[str, str] = models.CharField(max_length=64, unique=True)
    name: models.CharField[str, str] = models.CharField(max_length=200)
    description: models.TextField[str, str] = models.TextField(blank=True, default="")
    price: models.DecimalField[Decimal, Decimal] = models.DecimalField(
        max_digits=10, decimal_places=2
    )
    category: models.ForeignKey[Category | None, Category | None] = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.PROTECT, related_name="products"
    )
    category_id: int | None
    active: models.BooleanField[bool, bool] = models.BooleanField(default=True)
    low_stock_threshold: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(
        default=0
    )
    # An order short of it waits for deliveries (BACKORDERED) instead of being rejected.
    allow_backorder: models.BooleanField[bool, bool] = models.BooleanField(
        default=False, db_default=False
    )
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now_add=True)
    updated_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now=True)

    stock_levels: RelatedManager[StockLevel]

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="product_price_not_negative"),
        ]
        # The list's filters followed by its order, so a page is read from an index.
        indexes = [
            models.Index(fields=["active", "id"], name="product_active_by_id"),
            models.Index(fields=["category", "id"], name="product_category_by_id"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"
