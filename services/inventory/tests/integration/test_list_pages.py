"""GET /api/products/ and GET /api/products/{id}/ledger/: each page read in one statement, as
tuples, and rendered byte for byte as the serializers that document the items would."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from catalogue import persistence
from catalogue.apis import ProductOutputSerializer
from catalogue.models import Category, Product
from catalogue.selectors import product_list
from stock.apis import LedgerEntryOutputSerializer
from stock.handlers import on_order_created
from stock.models import StockLedgerEntry, StockLevel, Warehouse
from stock.services import stock_transfer
from tests import factories
from tests.factories import STAFF_ID, add_stock

pytestmark = pytest.mark.django_db


def rendered(page: dict[str, Any], items: list[Any], serializer: type[Any]) -> bytes:
    """The page as the serializer and DRF's renderer show ``items``, with the page's links."""
    return JSONRenderer().render(
        {"count": page["count"], "next": page["next"], "previous": page["previous"],
         "results": serializer(items, many=True).data}
    )  # fmt: skip


def walk(client: APIClient, url: str) -> Iterator[tuple[str, dict[str, Any], bytes]]:
    """Every page from ``url`` forwards to the last, then backwards from the last to the
    first (through ``previous`` links): (url, the decoded page, its bytes)."""
    last: dict[str, Any] = {}
    for link in ("next", "previous"):
        while url:
            response = client.get(url)
            assert response.status_code == 200, response.content
            page = response.json()
            yield url, page, response.content
            last, url = page, page[link]
        url = last["previous"]


@pytest.fixture
def catalogue(
    make_product: Callable[..., Product], make_warehouse: Callable[..., Warehouse]
) -> list[Product]:
    """Products in several warehouses (an inactive one among them), with and without a
    category, one reserved for an order, one moved between warehouses, one with no stock row
    at all, and times on a whole second (no fraction shown) and with microseconds."""
    make_warehouse("east", priority=5)
    make_warehouse("closed", active=False)
    tools = Category.objects.create(name="tools")
    products = []
    for n in range(7):
        product = make_product(
            on_hand=n + 1,
            category=tools if n % 2 else None,
            active=n != 3,
            price=Decimal("12.50") if n % 3 else Decimal("1000.00"),
            low_stock_threshold=n,
            description="" if n % 2 else f"A thing of {n} parts",
        )
        if n % 3 == 0:
            add_stock(product.pk, 4, "east")
        if n == 2:
            add_stock(product.pk, 2, "closed")
        products.append(product)
    on_order_created(factories.order_created([(products[0].pk, 5)]))  # 4 east, 1 default
    stock_transfer(
        product_id=products[6].pk, source="default", destination="closed", quantity=3,
        reason="shelves", actor_id=STAFF_ID, correlation_id="test",
    )  # fmt: skip
    bare = Product.objects.create(sku="BARE", name="Bare", price=Decimal("0.10"))
    Product.objects.filter(pk=products[1].pk).update(
        created_at=products[1].created_at.replace(microsecond=0)
    )
    return [*products, bare]


class TestTheProductList:
    QUERIES = ("", "?page_size=3", "?active=true&page_size=2", "?active=false", "?sku=SKU-2")

    def test_every_page_both_ways_is_the_serializers_byte_for_byte(
        self, catalogue: list[Product], anonymous_client: APIClient
    ) -> None:
        category = catalogue[1].category_id
        for query in (*self.QUERIES, f"?category={category}&page_size=2"):
            seen = set()
            for url, page, content in walk(anonymous_client, f"/api/products/{query}"):
                ids = [item["id"] for item in page["results"]]
                products = {p.pk: p for p in product_list().filter(pk__in=ids)}
                items = [products[pk] for pk in ids]
                assert content == rendered(page, items, ProductOutputSerializer), url
                seen.update(ids)
            assert seen == set(self.expected(catalogue, query, category)), query

    @staticmethod
    def expected(catalogue: list[Product], query: str, category: int | None) -> list[int]:
        if "active=true" in query:
            return [p.pk for p in catalogue if p.pk != catalogue[3].pk]
        if "active=false" in query:
            return [catalogue[3].pk]
        if "sku=" in query:
            return [catalogue[1].pk]
        if "category=" in query:
            return [p.pk for p in catalogue if p.category_id == category]
        return [p.pk for p in catalogue]

    def test_shows_each_warehouse_and_a_product_without_stock_rows(
        self, catalogue: list[Product], anonymous_client: APIClient
    ) -> None:
        items = anonymous_client.get("/api/products/").json()["results"]
        first, bare = items[0], items[-1]

        assert [(w["warehouse"], w["reserved"]) for w in first["warehouses"]] == [
            ("east", 4),
            ("default", 1),
        ]
        assert (first["on_hand"], first["reserved"], first["available"]) == (5, 5, 0)
        assert [w["warehouse"] for w in items[2]["warehouses"]] == ["default", "closed"]
        assert (bare["warehouses"], bare["on_hand"], bare["available"]) == ([], 0, 0)

    def test_the_orm_way_reads_the_same(self, catalogue: list[Product]) -> None:
        by_id = product_list()
        for products in (
            by_id[:3],
            by_id.filter(active=True)[2:6],
            product_list().order_by("-id")[:4],
            by_id.filter(category_id=catalogue[1].category_id)[:50],
            by_id.filter(sku="nothing")[:10],
        ):
            written_out = persistence.product_page(products)
            by_the_orm = persistence._product_page_orm(
                products.prefetch_related(None).values_list(*persistence._LOOKUPS)
            )
            assert written_out == by_the_orm
            assert [p.id for p in written_out] == list(products.values_list("id", flat=True))

    def test_an_unordered_page_is_refused(self) -> None:
        with pytest.raises(ValueError, match="ordering"):
            persistence.product_page(Product.objects.all()[:5])

    def test_one_statement_with_the_stock_rows_besides_the_count(
        self,
        catalogue: list[Product],
        anonymous_client: APIClient,
        django_assert_num_queries: Any,
    ) -> None:
        first = anonymous_client.get("/api/products/?page_size=3").json()
        last = anonymous_client.get(f"/api/products/?cursor={first['next'].split('cursor=')[1]}")
        category = catalogue[1].category_id
        for url in (
            "/api/products/",
            first["next"],
            last.json()["previous"],
            f"/api/products/?category={category}",
            "/api/products/?active=true&sku=SKU-1",
        ):
            with django_assert_num_queries(2):  # the count, the page with its stock rows
                assert anonymous_client.get(url).status_code == 200


class TestTheLedger:
    @pytest.fixture
    def hammer(
        self, make_product: Callable[..., Product], make_warehouse: Callable[..., Warehouse]
    ) -> Product:
        """Entries of every kind in two warehouses (one inactive by now), by staff and for
        orders."""
        make_warehouse("east", priority=5)
        hammer = make_product(on_hand=6)
        add_stock(hammer.pk, 4, "east")
        for _ in range(3):
            on_order_created(factories.order_created([(hammer.pk, 2)], str(uuid.uuid4())))
        stock_transfer(
            product_id=hammer.pk, source="default", destination="east", quantity=1,
            reason="shelves", actor_id=STAFF_ID, correlation_id="test",
        )  # fmt: skip
        Warehouse.objects.filter(code="east").update(active=False)
        assert StockLedgerEntry.objects.filter(product=hammer).count() == 7
        return hammer

    def test_every_page_both_ways_is_the_serializers_byte_for_byte(
        self, hammer: Product, staff_client: APIClient
    ) -> None:
        base = f"/api/products/{hammer.pk}/ledger/"
        for query, count in (("", 7), ("?page_size=2", 7), ("?warehouse=east&page_size=2", 4)):
            seen = []
            for url, page, content in walk(staff_client, base + query):
                ids = [item["id"] for item in page["results"]]
                entries = StockLedgerEntry.objects.select_related("warehouse").in_bulk(ids)
                items = [entries[pk] for pk in ids]
                assert content == rendered(page, items, LedgerEntryOutputSerializer), url
                seen.extend(ids)
            assert len(set(seen)) == count, query
        kinds = {e["kind"] for e in staff_client.get(base).json()["results"]}
        assert kinds == {"adjustment", "reserve", "transfer"}

    def test_one_statement_for_the_page(
        self, hammer: Product, staff_client: APIClient, django_assert_num_queries: Any
    ) -> None:
        base = f"/api/products/{hammer.pk}/ledger/"
        second = staff_client.get(base + "?page_size=2").json()["next"]
        for url, statements in ((base, 3), (second, 3), (base + "?warehouse=east", 4)):
            # The product's stock rows (its 404), the warehouse named, the count, the page.
            with django_assert_num_queries(statements):
                assert staff_client.get(url).status_code == 200
        assert StockLevel.objects.filter(product=hammer).count() == 2

    def test_an_unknown_product_has_no_ledger(
        self, staff_client: APIClient, django_assert_num_queries: Any
    ) -> None:
        with django_assert_num_queries(1):  # whether the product has stock rows
            response = staff_client.get("/api/products/999999/ledger/")

        assert response.status_code == 404
        assert response.json()["detail"] == "No Product matches the given query."
