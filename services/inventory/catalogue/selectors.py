from __future__ import annotations

from typing import Any

from django.db.models import F, QuerySet

from catalogue.models import Category, Product


def category_list() -> QuerySet[Category]:
    return Category.objects.order_by("name")


def product_list(*, filters: dict[str, Any] | None = None) -> QuerySet[Product]:
    """Products with their stock; ``filters`` may hold ``category``, ``active`` and ``sku``."""
    filters = filters or {}
    products = (
        Product.objects.select_related("category")
        .annotate(
            on_hand=F("stock__on_hand"),
            reserved=F("stock__reserved"),
            available=F("stock__on_hand") - F("stock__reserved"),
        )
        .order_by("id")
    )
    if "category" in filters:
        products = products.filter(category_id=filters["category"])
    if "active" in filters:
        products = products.filter(active=filters["active"])
    if "sku" in filters:
        products = products.filter(sku=filters["sku"])
    return products


def product_get(*, product_id: int) -> Product | None:
    return product_list().filter(pk=product_id).first()
