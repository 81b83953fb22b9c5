"""Writes to the catalogue; every change the orders service can see is announced with it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction

from catalogue.models import Category, Product
from errors import ErrorCode
from messaging.outbox import publish_event
from service_runtime.errors import refused
from stock.services import stock_level_create

PRODUCT_FIELDS = (
    "sku",
    "name",
    "description",
    "price",
    "category",
    "active",
    "low_stock_threshold",
    "allow_backorder",
)


@transaction.atomic
def category_create(*, name: str, description: str = "") -> Category:
    _ensure_category_name_free(name)
    return Category.objects.create(name=name, description=description)


@transaction.atomic
def category_update(*, category: Category, data: dict[str, Any], correlation_id: str) -> Category:
    category = Category.objects.select_for_update().get(pk=category.pk)
    renamed = "name" in data and data["name"] != category.name
    if renamed:
        _ensure_category_name_free(data["name"], exclude=category.pk)
    for field in ("name", "description"):
        if field in data:
            setattr(category, field, data[field])
    category.save()
    if renamed:  # the product events carry the category's name
        for product in category.products.select_for_update(of=("self",)).select_related("category"):
            product_announce(product=product, correlation_id=correlation_id)
    return category


@transaction.atomic
def category_delete(*, category: Category) -> None:
    count = category.products.count()
    if count:
        message = f"category {category.name!r} still has {count} products; move them first."
        raise refused(message, code=ErrorCode.CATEGORY_NOT_EMPTY)
    category.delete()


@transaction.atomic
def product_create(
    *,
    sku: str,
    name: str,
    price: Decimal,
    correlation_id: str,
    description: str = "",
    category: Category | None = None,
    active: bool = True,
    low_stock_threshold: int = 0,
    allow_backorder: bool = False,
) -> Product:
    _ensure_sku_free(sku)
    product = Product.objects.create(
        sku=sku,
        name=name,
        description=description,
        price=price,
        category=category,
        active=active,
        low_stock_threshold=low_stock_threshold,
        allow_backorder=allow_backorder,
    )
    stock_level_create(product_id=product.pk)
    product_announce(product=product, correlation_id=correlation_id)
    return product


@transaction.atomic
def product_update(*, product: Product, data: dict[str, Any], correlation_id: str) -> Product:
    """Change some fields; announced only when something changed."""
    # The row lock orders concurrent updates, so their events leave in the order they commit.
    product = (
        Product.objects.select_for_update(of=("self",))
        .select_related("category")
        .get(pk=product.pk)
    )
    if "sku" in data and data["sku"] != product.sku:
        _ensure_sku_free(data["sku"], exclude=product.pk)
    changed = [f for f in PRODUCT_FIELDS if f in data and getattr(product, f) != data[f]]
    if not changed:
        return product
    for field in changed:
        setattr(product, field, data[field])
    product.save()
    product_announce(product=product, correlation_id=correlation_id)
    return product


def product_deactivate(*, product: Product, correlation_id: str) -> Product:
    """Products are never deleted: orders and the ledger still point at them."""
    return product_update(product=product, data={"active": False}, correlation_id=correlation_id)


def product_announce(*, product: Product, correlation_id: str) -> None:
    publish_event("product.upserted", product_event(product), correlation_id=correlation_id)


def product_event(product: Product) -> dict[str, Any]:
    return {
        "product_id": product.pk,
        "sku": product.sku,
        "name": product.name,
        "price": f"{Decimal(product.price):.2f}",
        "active": product.active,
        "category": product.category.name if product.category else None,
    }


def _ensure_sku_free(sku: str, *, exclude: int | None = None) -> None:
    if Product.objects.filter(sku=sku).exclude(pk=exclude).exists():
        message = f"a product with sku {sku!r} already exists."
        raise refused(message, code=ErrorCode.SKU_TAKEN, field="sku")


def _ensure_category_name_free(name: str, *, exclude: int | None = None) -> None:
    if Category.objects.filter(name=name).exclude(pk=exclude).exists():
        message = f"a category named {name!r} already exists."
        raise refused(message, code=ErrorCode.CATEGORY_NAME_TAKEN, field="name")
