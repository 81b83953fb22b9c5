import pytest

from catalogue.models import Category, Product
from stock.handlers import on_order_created
from tests import factories
from tests.factories import add_stock, published

pytestmark = pytest.mark.django_db

NEW_PRODUCT = {"sku": "HAM-1", "name": "Hammer", "price": "12.50", "low_stock_threshold": 3}


class TestBrowsing:
    def test_anyone_sees_stock_and_availability(self, anonymous_client, make_product):
        hammer = make_product(on_hand=5, name="Hammer")
        on_order_created(factories.order_created([(hammer.pk, 2)]))

        response = anonymous_client.get("/api/products/")

        assert response.status_code == 200
        [item] = response.json()["results"]
        assert item["name"] == "Hammer"
        assert (item["on_hand"], item["reserved"], item["available"]) == (5, 2, 3)
        assert item["price"] == "9.99"

    def test_anyone_sees_the_stock_of_each_warehouse_and_the_totals(
        self, anonymous_client, make_product, make_warehouse
    ):
        make_warehouse("east", priority=5)
        make_warehouse("closed", active=False)
        hammer = make_product(on_hand=3)
        add_stock(hammer.pk, 4, "east")
        add_stock(hammer.pk, 2, "closed")
        on_order_created(factories.order_created([(hammer.pk, 5)]))  # 4 east, 1 default
        make_product(sku="NAILS")  # only its default warehouse's counters, at zero

        [item, nails] = anonymous_client.get("/api/products/").json()["results"]
        detail = anonymous_client.get(f"/api/products/{hammer.pk}/").json()

        for body in (item, detail):
            assert (body["on_hand"], body["reserved"], body["available"]) == (9, 5, 4)
            assert body["warehouses"] == [  # in allocation order
                {"warehouse": "east", "on_hand": 4, "reserved": 4, "available": 0},
                {"warehouse": "default", "on_hand": 3, "reserved": 1, "available": 2},
                {"warehouse": "closed", "on_hand": 2, "reserved": 0, "available": 2},
            ]
        assert nails["warehouses"] == [
            {"warehouse": "default", "on_hand": 0, "reserved": 0, "available": 0}
        ]

    def test_anyone_reads_one_product(self, anonymous_client, make_product):
        hammer = make_product(on_hand=4)

        response = anonymous_client.get(f"/api/products/{hammer.pk}/")

        assert response.status_code == 200
        assert response.json()["available"] == 4

    def test_an_unknown_product_is_404(self, anonymous_client):
        response = anonymous_client.get("/api/products/999999/")

        assert response.status_code == 404
        assert response.json()["code"] == "not_found"

    def test_filters_by_sku_active_and_category(self, anonymous_client, make_product):
        tools = Category.objects.create(name="Tools")
        make_product(sku="A")
        make_product(sku="B", active=False)
        make_product(sku="C", category=tools)

        def skus(query):
            response = anonymous_client.get(f"/api/products/?{query}")
            assert response.status_code == 200
            return [item["sku"] for item in response.json()["results"]]

        assert skus("") == ["A", "B", "C"]
        assert skus("sku=B") == ["B"]
        assert skus("active=false") == ["B"]
        assert skus("active=true") == ["A", "C"]
        assert skus(f"category={tools.pk}") == ["C"]

    def test_a_bad_filter_is_400(self, anonymous_client):
        assert anonymous_client.get("/api/products/?category=tools").status_code == 400

    def test_a_bad_token_is_refused_even_for_reading(self, anonymous_client, db):
        anonymous_client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")

        assert anonymous_client.get("/api/products/").status_code == 401


class TestCreating:
    def test_staff_creates_a_product_with_no_stock_and_announces_it(self, staff_client):
        response = staff_client.post("/api/products/", NEW_PRODUCT, format="json")

        assert response.status_code == 201, response.json()
        body = response.json()
        assert (body["on_hand"], body["reserved"], body["available"]) == (0, 0, 0)
        assert body["price"] == "12.50"
        [event] = published("product.upserted")
        assert event.data["product_id"] == body["id"]
        assert event.data["sku"] == "HAM-1"

    def test_a_customer_may_not(self, customer_client):
        response = customer_client.post("/api/products/", NEW_PRODUCT, format="json")

        assert response.status_code == 403
        assert not Product.objects.exists()

    def test_without_a_token_it_is_401(self, anonymous_client, db):
        response = anonymous_client.post("/api/products/", NEW_PRODUCT, format="json")

        assert response.status_code == 401

    def test_a_taken_sku_is_400(self, staff_client, make_product):
        make_product(sku="HAM-1")

        response = staff_client.post("/api/products/", NEW_PRODUCT, format="json")

        assert response.status_code == 400
        assert "sku" in response.json()["errors"]

    def test_a_negative_price_is_400(self, staff_client):
        product = {**NEW_PRODUCT, "price": "-1.00"}

        response = staff_client.post("/api/products/", product, format="json")

        assert response.status_code == 400
        assert response.json()["detail"].startswith("price:")


class TestChanging:
    def test_patch_changes_the_price_and_announces_it(self, staff_client, make_product):
        hammer = make_product()

        response = staff_client.patch(
            f"/api/products/{hammer.pk}/", {"price": "20.00"}, format="json"
        )

        assert response.status_code == 200
        assert response.json()["price"] == "20.00"
        assert published("product.upserted")[-1].data["price"] == "20.00"

    def test_put_replaces_the_product(self, staff_client, make_product):
        hammer = make_product(description="old")

        response = staff_client.put(f"/api/products/{hammer.pk}/", NEW_PRODUCT, format="json")

        assert response.status_code == 200
        assert response.json()["description"] == ""
        assert response.json()["sku"] == "HAM-1"

    def test_delete_makes_it_inactive_and_announces_it(self, staff_client, make_product):
        hammer = make_product()

        response = staff_client.delete(f"/api/products/{hammer.pk}/")

        assert response.status_code == 204
        assert Product.objects.get(pk=hammer.pk).active is False
        assert published("product.upserted")[-1].data["active"] is False

    def test_a_customer_may_not_change_or_delete(self, customer_client, make_product):
        hammer = make_product()
        url = f"/api/products/{hammer.pk}/"

        assert customer_client.patch(url, {"price": "0"}, format="json").status_code == 403
        assert customer_client.delete(url).status_code == 403
        assert Product.objects.get(pk=hammer.pk).active is True
