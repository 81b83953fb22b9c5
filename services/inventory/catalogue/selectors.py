from __future__ import annotations

from typing import Any

from django.db.models import IntegerField, OuterRef, Prefetch, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from catalogue.models import Category, Product
from stock.models import Backorder, StockLevel


def category_list() -> QuerySet[Category]:
    return Category.objects.order_by("name")


def product_list(*, filters: dict[str, Any] | None = None) -> QuerySet[Product]:
    """Products with their stock in each warehouse (``stock_levels``, in allocation order, one
    statement for a whole page) and ``backordered``, the units their waiting orders still
    miss (a subquery of the page's statement); ``filters`` may hold ``category``, ``active``
    and ``sku``."""
    filters = filters or {}
    levels = StockLevel.objects.select_related("warehouse").order_by(
        "-warehouse__priority", "warehouse_id"
    )
    products = (
        Product.objects.select_related("category")
        .annotate(backordered=_backordered())
        .prefetch_related(Prefetch("stock_levels", queryset=levels))
        .order_by("id")
    )
    if "category" in filters:
        products = products.filter(category_id=filters["category"])
    if "active" in filters:
        products = products.filter(active=filters["active"])
    if "sku" in filters:
        products = products.filter(sku=filters["sku"])
    return products


def _backordered() -> Coalesce:
    missing = (
        Backorder.objects.filter(product_id=OuterRef("pk"))
        .order_by()
        .values("product_id")
        .annotate(total=Sum("missing"))
        .values("total")
    )
    return Coalesce(Subquery(missing), Value(0), output_field=IntegerField())


def product_get(*, product_id: int) -> Product | None:
    return product_list().filter(pk=product_id).first()
