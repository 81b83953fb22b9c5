"""The product API's ``allow_backorder`` and ``backordered``, and the two backorder endpoints."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalogue.models import Product
from stock.handlers import on_order_created
from stock.models import Reservation
from tests import factories
from tests.conftest import _client
from tests.factories import add_stock

pytestmark = pytest.mark.django_db


def order(lines):
    envelope = factories.order_created(lines)
    on_order_created(envelope)
    return envelope.data["order_id"]


class TestProductFields:
    def test_staff_create_a_product_that_allows_backorders(self, staff_client):
        body = {"sku": "HAM-1", "name": "Hammer", "price": "1.00", "allow_backorder": True}

        response = staff_client.post("/api/products/", body, format="json")

        assert response.status_code == 201, response.json()
        assert (response.json()["allow_backorder"], response.json()["backordered"]) == (True, 0)
        assert Product.objects.get(sku="HAM-1").allow_backorder is True

    def test_a_product_does_not_allow_backorders_unless_told(self, staff_client):
        body = {"sku": "HAM-1", "name": "Hammer", "price": "1.00"}

        assert (
            staff_client.post("/api/products/", body, format="json").json()["allow_backorder"]
            is False
        )

    def test_staff_patch_it_and_a_customer_may_not(
        self, staff_client, customer_client, make_product
    ):
        hammer = make_product()
        url = f"/api/products/{hammer.pk}/"

        assert (
            customer_client.patch(url, {"allow_backorder": True}, format="json").status_code == 403
        )
        response = staff_client.patch(url, {"allow_backorder": True}, format="json")

        assert response.status_code == 200
        assert response.json()["allow_backorder"] is True
        assert response.json()["price"] == "9.99"  # the others unchanged
        hammer.refresh_from_db()
        assert hammer.allow_backorder is True

    def test_a_bad_value_is_400(self, staff_client, make_product):
        hammer = make_product()

        response = staff_client.patch(
            f"/api/products/{hammer.pk}/", {"allow_backorder": "perhaps"}, format="json"
        )

        assert response.status_code == 400
        assert response.json()["code"] == "invalid"

    def test_backordered_counts_the_units_waiting_orders_miss(self, anonymous_client, make_product):
        hammer = make_product(on_hand=1, allow_backorder=True)
        other = make_product(on_hand=0, allow_backorder=True)
        order([(hammer.pk, 3)])  # misses 2
        order([(hammer.pk, 4), (other.pk, 1)])  # misses 4 of hammer, 1 of other

        page = anonymous_client.get("/api/products/").json()["results"]
        one = anonymous_client.get(f"/api/products/{hammer.pk}/").json()

        assert {item["id"]: item["backordered"] for item in page} == {hammer.pk: 6, other.pk: 1}
        assert one["backordered"] == 6
        assert (one["on_hand"], one["reserved"]) == (1, 1)

    def test_the_list_stays_one_query_per_page_with_backorders(
        self, anonymous_client, make_product
    ):
        products = [make_product(on_hand=0, allow_backorder=True) for _ in range(5)]
        for product in products:
            order([(product.pk, 2)])

        def count(url):
            with CaptureQueriesContext(connection) as context:
                assert anonymous_client.get(url).status_code == 200
            return len(context.captured_queries)

        few = count("/api/products/?page_size=2")
        assert count("/api/products/?page_size=50") == few


class TestProductBackorders:
    def test_staff_see_the_waiting_list_in_serving_order(self, staff_client, make_product):
        hammer = make_product(on_hand=0, allow_backorder=True)
        first, second, old = (order([(hammer.pk, n)]) for n in (1, 2, 3))
        then = timezone.now() - timedelta(days=2)
        Reservation.objects.filter(order_id=old).update(created_at=then)

        response = staff_client.get(f"/api/products/{hammer.pk}/backorders/")

        assert response.status_code == 200
        body = response.json()
        assert [(b["order_id"], b["place"], b["quantity"], b["overdue"]) for b in body] == [
            (old, 1, 3, True),
            (first, 2, 1, False),
            (second, 3, 2, False),
        ]
        assert body[0]["waiting_since"].startswith(str(then.date()))

    def test_a_customer_may_not_and_anonymous_is_401(
        self, customer_client, anonymous_client, make_product
    ):
        hammer = make_product()
        url = f"/api/products/{hammer.pk}/backorders/"

        assert customer_client.get(url).status_code == 403
        assert anonymous_client.get(url).status_code == 401

    def test_an_unknown_product_is_404(self, staff_client):
        response = staff_client.get("/api/products/999999/backorders/")

        assert response.status_code == 404
        assert response.json()["code"] == "not_found"


class TestOrderBackorder:
    def test_the_owner_sees_what_the_order_misses_and_its_places(
        self, customer_client, make_product
    ):
        hammer = make_product(on_hand=1, allow_backorder=True)
        nails = make_product(on_hand=0, allow_backorder=True)
        order([(hammer.pk, 2)])
        order_id = order([(hammer.pk, 3), (nails.pk, 2)])

        response = customer_client.get(f"/api/backorders/{order_id}/")

        assert response.status_code == 200
        assert response.json() == {
            "order_id": order_id,
            "status": "BACKORDERED",
            "lines": [
                {"product_id": hammer.pk, "missing": 3, "place": 2},
                {"product_id": nails.pk, "missing": 2, "place": 1},
            ],
        }

    def test_once_complete_it_has_no_lines(self, customer_client, make_product):
        hammer = make_product(on_hand=0, allow_backorder=True)
        order_id = order([(hammer.pk, 2)])
        add_stock(hammer.pk, 2)

        body = customer_client.get(f"/api/backorders/{order_id}/").json()

        assert (body["status"], body["lines"]) == ("RESERVED", [])

    def test_staff_see_it_another_customer_gets_404_anonymous_401(
        self, staff_client, anonymous_client, make_product
    ):
        hammer = make_product(on_hand=0, allow_backorder=True)
        order_id = order([(hammer.pk, 2)])
        url = f"/api/backorders/{order_id}/"
        stranger = _client(user_id=99, username="mallory", is_staff=False)

        assert staff_client.get(url).status_code == 200
        response = stranger.get(url)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
        assert anonymous_client.get(url).status_code == 401

    def test_an_order_never_seen_is_404(self, customer_client):
        response = customer_client.get(f"/api/backorders/{uuid.uuid4()}/")

        assert response.status_code == 404
