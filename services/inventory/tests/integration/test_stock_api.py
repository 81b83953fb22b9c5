import pytest

from stock.handlers import on_order_created
from stock.models import StockLedgerEntry, StockLevel
from tests import factories
from tests.factories import STAFF_ID

pytestmark = pytest.mark.django_db


def adjust_url(product):
    return f"/api/products/{product.pk}/stock-adjustments/"


class TestStockAdjustment:
    def test_staff_adds_stock_and_it_is_in_the_ledger(self, staff_client, make_product):
        hammer = make_product()

        response = staff_client.post(
            adjust_url(hammer), {"delta": 12, "reason": "delivery 123"}, format="json"
        )

        assert response.status_code == 201, response.json()
        body = response.json()
        assert (body["on_hand"], body["reserved"], body["available"]) == (12, 0, 12)
        assert body["entry"]["kind"] == "adjustment"
        entry = StockLedgerEntry.objects.get(pk=body["entry"]["id"])
        assert (entry.delta_on_hand, entry.reason, entry.actor_id) == (12, "delivery 123", STAFF_ID)

    def test_staff_removes_stock(self, staff_client, make_product):
        hammer = make_product(on_hand=10)

        response = staff_client.post(
            adjust_url(hammer), {"delta": -4, "reason": "broken"}, format="json"
        )

        assert response.status_code == 201
        assert StockLevel.objects.get(product=hammer).on_hand == 6

    def test_a_customer_gets_403(self, customer_client, make_product):
        hammer = make_product()

        response = customer_client.post(
            adjust_url(hammer), {"delta": 5, "reason": "x"}, format="json"
        )

        assert response.status_code == 403
        assert response.json()["detail"] == "Staff only."

    def test_no_token_gets_401(self, anonymous_client, make_product):
        hammer = make_product()

        response = anonymous_client.post(
            adjust_url(hammer), {"delta": 5, "reason": "x"}, format="json"
        )

        assert response.status_code == 401

    @pytest.mark.parametrize(
        ("payload", "message"),
        [
            ({"delta": 0, "reason": "x"}, "delta: delta must not be 0"),
            ({"delta": 5}, "reason: This field is required."),
            ({"delta": 5, "reason": ""}, "reason: This field may not be blank."),
            ({"delta": "many", "reason": "x"}, "delta: A valid integer is required."),
            ({"delta": -11, "reason": "x"}, "delta: cannot remove 11: only 10 on hand"),
        ],
    )
    def test_a_bad_adjustment_is_400(self, staff_client, make_product, payload, message):
        hammer = make_product(on_hand=10)

        response = staff_client.post(adjust_url(hammer), payload, format="json")

        assert response.status_code == 400
        assert response.json()["detail"].startswith(message)
        assert StockLevel.objects.get(product=hammer).on_hand == 10

    def test_stock_reserved_for_orders_cannot_be_removed(self, staff_client, make_product):
        hammer = make_product(on_hand=10)
        on_order_created(factories.order_created([(hammer.pk, 7)]))

        response = staff_client.post(
            adjust_url(hammer), {"delta": -4, "reason": "stocktake"}, format="json"
        )

        assert response.status_code == 400
        assert response.json()["detail"] == (
            "delta: cannot remove 4: 7 of the 10 on hand are reserved for orders, "
            "so at most 3 can be removed."
        )

    def test_an_unknown_product_is_404(self, staff_client, db):
        response = staff_client.post(
            "/api/products/999999/stock-adjustments/", {"delta": 1, "reason": "x"}, format="json"
        )

        assert response.status_code == 404


class TestLedger:
    def test_staff_reads_the_ledger_newest_first(self, staff_client, make_product):
        hammer = make_product(on_hand=10)
        on_order_created(factories.order_created([(hammer.pk, 3)]))

        response = staff_client.get(f"/api/products/{hammer.pk}/ledger/")

        assert response.status_code == 200
        kinds = [entry["kind"] for entry in response.json()["results"]]
        assert kinds == ["reserve", "adjustment"]

    def test_customers_and_strangers_may_not(self, customer_client, anonymous_client, make_product):
        hammer = make_product()
        url = f"/api/products/{hammer.pk}/ledger/"

        assert customer_client.get(url).status_code == 403
        assert anonymous_client.get(url).status_code == 401
