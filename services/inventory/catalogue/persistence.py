"""The product list's page: the written-out PostgreSQL statement beside its ORM twin.

Other databases (SQLite, for a laptop) take the twin; both read the same values. With stock
per warehouse, a page of products read as model instances with their stock rows prefetched
cost two statements, an instance per row and nested serializers: the list answered at p50
35 ms, p99 57 ms over a million orders (``reports/bench-profile.md``). :func:`product_page`
reads the page and each product's stock in every warehouse in one statement, as tuples.

Everything else about products goes through the ORM.
"""

from __future__ import annotations

import functools
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import QuerySet

from catalogue.models import Product
from service_runtime.pagination import explicit_ordering, page_with_lateral
from stock.models import StockLevel, Warehouse


class WarehouseStock(NamedTuple):
    """A product's counters in one warehouse, named by the warehouse's code."""

    warehouse: str
    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class ProductEntry(NamedTuple):
    """A product as the API shows it: its columns (or its queryset's annotations) in the API's
    order, then its stock in each warehouse, in allocation order (the highest priority first,
    then the oldest warehouse; inactive ones included).

    A new column of the list is one more field here, before ``warehouses`` (named as the ORM
    names it, or through ``_LOOKUPS``), and one more key where the body is built."""

    id: int
    sku: str
    name: str
    description: str
    price: Decimal
    category_id: int | None
    category_name: str | None
    active: bool
    low_stock_threshold: int
    allow_backorder: bool
    backordered: int  # the units its waiting orders still miss: ``product_list``'s annotation
    created_at: datetime
    updated_at: datetime
    warehouses: tuple[WarehouseStock, ...] = ()


# The fields of ``ProductEntry`` that are the product's own (or its category's), and the
# lookups ``values_list`` reads them by.
PRODUCT_COLUMNS = ProductEntry._fields[:-1]
_LOOKUPS = tuple({"category_name": "category__name"}.get(name, name) for name in PRODUCT_COLUMNS)


def _postgresql() -> bool:
    return connection.vendor == "postgresql"


def product_page(products: QuerySet[Product]) -> list[ProductEntry]:
    """The products of ``products`` (filtered, ordered and sliced: a page of the list) with
    their stock in every warehouse, in one statement.

    The statement is ``products``' own, as the ORM writes it, reading only the columns shown,
    and each row's stock rows are aggregated beside it, for the page's rows only (instead of
    one more query for the stock rows and a model instance for every product and row).
    """
    explicit_ordering(products)
    page_rows = products.prefetch_related(None).values_list(*_LOOKUPS)
    if not _postgresql():
        return _product_page_orm(page_rows)
    rows = page_with_lateral(page_rows, PRODUCT_COLUMNS, _levels_arrays())
    return [_page_item(row) for row in rows]


@functools.cache
def _levels_arrays() -> str:
    """The stock rows of the product aliased ``page``, one array per ``WarehouseStock`` field,
    in allocation order: a subquery of one row for a ``CROSS JOIN LATERAL`` (NULLs when the
    product has none)."""
    qn = connection.ops.quote_name
    ordering = f"w.{qn('priority')} DESC, s.{qn('warehouse_id')}"
    columns = {"warehouse": f"w.{qn('code')}", "on_hand": "s.on_hand", "reserved": "s.reserved"}
    aggregates = ", ".join(
        f"array_agg({columns[name]} ORDER BY {ordering})" for name in WarehouseStock._fields
    )
    return (
        f"(SELECT {aggregates} FROM {qn(StockLevel._meta.db_table)} AS s"  # noqa: S608
        f" JOIN {qn(Warehouse._meta.db_table)} AS w ON w.{qn('id')} = s.{qn('warehouse_id')}"
        f" WHERE s.{qn('product_id')} = page.{qn('id')})"
    )


def _page_item(row: tuple[Any, ...]) -> ProductEntry:
    """A product of a page from a row of :func:`product_page`'s statement: its columns, then
    one array per column of its stock rows (NULL when it has none)."""
    split = len(PRODUCT_COLUMNS)
    levels = zip(*(column or () for column in row[split:]), strict=True)
    return ProductEntry._make((*row[:split], tuple(map(WarehouseStock._make, levels))))


def _product_page_orm(page_rows: QuerySet[Product, tuple[Any, ...]]) -> list[ProductEntry]:
    page = list(page_rows)
    levels: dict[int, list[WarehouseStock]] = {row[0]: [] for row in page}
    for product_id, *values in (
        StockLevel.objects.filter(product_id__in=levels)
        .order_by("-warehouse__priority", "warehouse_id")
        .values_list("product_id", "warehouse__code", "on_hand", "reserved")
    ):
        levels[product_id].append(WarehouseStock(*values))
    return [ProductEntry._make((*row, tuple(levels[row[0]]))) for row in page]
