"""The product list and a product's stock ledger on a few thousand rows: every statement reads a
few rows through an index, never a whole table, whatever the filter, on any page."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from rest_framework.test import APIClient

from catalogue.apis import ProductPagination
from catalogue.models import Category, Product
from service_runtime import query_plans
from service_runtime.query_plans import statements
from stock.apis import LedgerPagination
from stock.models import StockLedgerEntry, StockLevel, Warehouse
from stock.warehouses import warehouse_default

pytestmark = pytest.mark.django_db

PRODUCTS = 4000
ENTRIES_PER_PRODUCT = 3  # and a few thousand for the one whose ledger is read
# The counts stop at 50 (products) and 100 (ledger) here, a page is 50: far from the 4000
# products or 15000 entries.
READ_LIMIT = 250
# A category holds a tenth of the products, spread over the ids: PostgreSQL may rather walk
# the products by id and skip the others (ten rows read per row shown, on any page) than
# fetch them from all over the table through the category's index.
PRODUCTS_READ_LIMIT = 600


@pytest.fixture
def catalogue(monkeypatch: pytest.MonkeyPatch) -> Product:
    categories = Category.objects.bulk_create(Category(name=f"c{i}") for i in range(10))
    products = Product.objects.bulk_create(
        Product(
            sku=f"SKU-{i}",
            name=f"Product {i}",
            price=Decimal("1.00"),
            category=categories[i % len(categories)],
            active=i % 4 != 0,
        )
        for i in range(PRODUCTS)
    )
    main = warehouse_default()
    # The busy product is also kept in a second warehouse: its orders come from both in turn.
    east = Warehouse.objects.create(code="east", name="East", priority=1)
    StockLevel.objects.bulk_create(
        StockLevel(product=p, warehouse=main, on_hand=10) for p in products
    )
    busy = products[7]
    StockLevel.objects.create(product=busy, warehouse=east, on_hand=10)
    StockLedgerEntry.objects.bulk_create(
        StockLedgerEntry(
            product=p, warehouse=main, kind="adjustment", delta_on_hand=1, reason="count"
        )
        for p in products
        for _ in range(ENTRIES_PER_PRODUCT)
    )
    StockLedgerEntry.objects.bulk_create(
        StockLedgerEntry(
            product=busy, warehouse=warehouse, kind="reserve", delta_reserved=1, reason="order"
        )
        for _ in range(1500)
        for warehouse in (main, east)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "ANALYZE catalogue_product, stock_stocklevel, stock_stockledgerentry, stock_warehouse"
        )
    monkeypatch.setattr(ProductPagination, "count_limit", 50)
    monkeypatch.setattr(LedgerPagination, "count_limit", 100)
    return busy


def most_rows_read(client: APIClient, url: str, table: str) -> int:
    """The most rows any statement of the request read from ``table``."""
    with statements() as run:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return query_plans.most_rows_read(run, table)


@pytest.mark.parametrize("query", ["", "?active=true", "?category={category}", "?sku=SKU-5"])
def test_the_product_list_reads_indexes(
    catalogue: Product, anonymous_client: APIClient, query: str
) -> None:
    url = f"/api/products/{query.format(category=catalogue.category_id)}"
    first = anonymous_client.get(url).json()

    for page in (url, first["next"]) if first["next"] else (url,):
        assert most_rows_read(anonymous_client, page, "catalogue_product") <= PRODUCTS_READ_LIMIT


@pytest.mark.parametrize("query", ["", "?warehouse=east", "?warehouse=default"])
def test_the_ledger_reads_an_index(catalogue: Product, staff_client: APIClient, query: str) -> None:
    url = f"/api/products/{catalogue.pk}/ledger/{query}"
    first = staff_client.get(url).json()

    assert first["count"] is None  # 1500 entries or more: more than the limit
    assert {entry["warehouse"] for entry in first["results"]} == (
        {query.removeprefix("?warehouse=")} if query else {"default", "east"}
    )
    for page in (url, first["next"]):
        assert most_rows_read(staff_client, page, "stock_stockledgerentry") <= READ_LIMIT
