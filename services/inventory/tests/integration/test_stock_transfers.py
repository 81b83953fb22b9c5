"""Staff move stock between warehouses, adjust it in a named one and read one warehouse's
ledger: at once, never below what orders hold, and every move in the ledger."""

import pytest

from stock.handlers import on_order_created
from stock.models import StockLedgerEntry
from stock.selectors import stock_ledger_mismatches
from tests import factories
from tests.factories import STAFF_ID, add_stock, stock_by_warehouse

pytestmark = pytest.mark.django_db

URL = "/api/stock-transfers/"


@pytest.fixture
def hammer(make_product, make_warehouse):
    """10 hammers in the default warehouse, of which an order holds 4; east holds none."""
    make_warehouse("east", priority=-1)
    make_warehouse("closed", active=False)
    hammer = make_product(on_hand=10)
    on_order_created(factories.order_created([(hammer.pk, 4)]))
    return hammer


def transfer(client, product, quantity, source="default", destination="east", **more):
    payload = {
        "product": product.pk,
        "from_warehouse": source,
        "to_warehouse": destination,
        "quantity": quantity,
        "reason": "rebalance",
        **more,
    }
    return client.post(URL, payload, format="json")


class TestTransfer:
    def test_moves_what_is_available_with_an_entry_out_and_one_in(self, staff_client, hammer):
        response = transfer(staff_client, hammer, 6)

        assert response.status_code == 201, response.json()
        body = response.json()
        assert stock_by_warehouse(hammer.pk) == {"default": (4, 4), "east": (6, 0)}
        assert [
            (e["warehouse"], e["kind"], e["delta_on_hand"], e["delta_reserved"], e["reason"])
            for e in body["entries"]
        ] == [
            ("default", "transfer", -6, 0, "rebalance"),
            ("east", "transfer", 6, 0, "rebalance"),
        ]
        assert [e["actor_id"] for e in body["entries"]] == [STAFF_ID, STAFF_ID]
        assert body["from_warehouse"] == {
            "warehouse": "default",
            "on_hand": 4,
            "reserved": 4,
            "available": 0,
        }
        assert body["to_warehouse"] == {
            "warehouse": "east",
            "on_hand": 6,
            "reserved": 0,
            "available": 6,
        }
        assert StockLedgerEntry.objects.filter(kind="transfer").count() == 2
        assert stock_ledger_mismatches() == []

    def test_and_back_again(self, staff_client, hammer):
        transfer(staff_client, hammer, 6)

        response = transfer(staff_client, hammer, 5, source="east", destination="default")

        assert response.status_code == 201
        assert stock_by_warehouse(hammer.pk) == {"default": (9, 4), "east": (1, 0)}
        assert stock_ledger_mismatches() == []

    def test_an_inactive_warehouse_may_store_stock(self, staff_client, hammer):
        response = transfer(staff_client, hammer, 2, destination="closed")

        assert response.status_code == 201
        assert stock_by_warehouse(hammer.pk)["closed"] == (2, 0)

    def test_never_more_than_is_available_at_the_source(self, staff_client, hammer):
        response = transfer(staff_client, hammer, 7)

        assert response.status_code == 400
        assert response.json()["errors"]["quantity"] == [
            "cannot transfer 7: only 6 available in warehouse 'default' (10 on hand, 4 reserved)."
        ]
        assert stock_by_warehouse(hammer.pk) == {"default": (10, 4)}
        assert not StockLedgerEntry.objects.filter(kind="transfer").exists()

    def test_from_a_warehouse_that_never_held_the_product(self, staff_client, hammer):
        response = transfer(staff_client, hammer, 1, source="east", destination="default")

        assert response.status_code == 400
        assert response.json()["errors"]["quantity"] == [
            "cannot transfer 1: only 0 available in warehouse 'east'."
        ]
        assert stock_by_warehouse(hammer.pk) == {"default": (10, 4)}

    @pytest.mark.parametrize(
        ("change", "field", "message"),
        [
            ({"to_warehouse": "default"}, "to_warehouse", "must differ"),
            ({"from_warehouse": "nowhere"}, "from_warehouse", "no warehouse has the code"),
            ({"to_warehouse": "nowhere"}, "to_warehouse", "no warehouse has the code"),
            ({"to_warehouse": "not a code"}, "to_warehouse", "Enter a valid"),
            ({"quantity": 0}, "quantity", "greater than or equal to 1"),
            ({"quantity": -3}, "quantity", "greater than or equal to 1"),
            ({"quantity": "some"}, "quantity", "A valid integer is required."),
            ({"reason": ""}, "reason", "This field may not be blank."),
            ({"reason": "x" * 501}, "reason", "no more than 500 characters"),
            ({"product": 999999}, "product", "no product has the id 999999."),
            ({"product": "hammer"}, "product", "A valid integer is required."),
        ],
    )
    def test_bad_input_is_400(self, staff_client, hammer, change, field, message):
        payload = {
            "product": hammer.pk,
            "from_warehouse": "default",
            "to_warehouse": "east",
            "quantity": 1,
            "reason": "rebalance",
            **change,
        }

        response = staff_client.post(URL, payload, format="json")

        assert response.status_code == 400
        assert response.json()["code"] == "invalid"
        assert message in response.json()["errors"][field][0]
        assert stock_by_warehouse(hammer.pk) == {"default": (10, 4)}

    def test_staff_only(self, customer_client, anonymous_client, hammer):
        assert transfer(customer_client, hammer, 1).status_code == 403
        assert transfer(anonymous_client, hammer, 1).status_code == 401
        assert stock_by_warehouse(hammer.pk) == {"default": (10, 4)}


class TestAdjustmentInAWarehouse:
    def test_names_the_warehouse_and_creates_its_counters(self, staff_client, hammer):
        response = staff_client.post(
            f"/api/products/{hammer.pk}/stock-adjustments/",
            {"delta": 3, "reason": "delivery", "warehouse": "east"},
            format="json",
        )

        assert response.status_code == 201, response.json()
        body = response.json()
        assert (body["on_hand"], body["reserved"], body["available"]) == (13, 4, 9)
        assert body["warehouse"] == {
            "warehouse": "east",
            "on_hand": 3,
            "reserved": 0,
            "available": 3,
        }
        assert body["entry"]["warehouse"] == "east"
        assert stock_by_warehouse(hammer.pk) == {"default": (10, 4), "east": (3, 0)}

    def test_without_one_it_is_the_default_warehouse(self, staff_client, hammer):
        response = staff_client.post(
            f"/api/products/{hammer.pk}/stock-adjustments/",
            {"delta": -6, "reason": "stocktake"},
            format="json",
        )

        assert response.status_code == 201
        assert response.json()["warehouse"]["warehouse"] == "default"
        assert stock_by_warehouse(hammer.pk) == {"default": (4, 4)}

    def test_the_rules_hold_per_warehouse(self, staff_client, hammer):
        add_stock(hammer.pk, 5, "east")

        response = staff_client.post(
            f"/api/products/{hammer.pk}/stock-adjustments/",
            {"delta": -7, "reason": "stocktake"},
            format="json",
        )

        assert response.status_code == 400
        assert response.json()["detail"] == (
            "delta: cannot remove 7: 4 of the 10 on hand are reserved for orders, "
            "so at most 6 can be removed."
        )

    def test_a_removal_from_a_warehouse_without_stock_is_400(self, staff_client, hammer):
        response = staff_client.post(
            f"/api/products/{hammer.pk}/stock-adjustments/",
            {"delta": -1, "reason": "stocktake", "warehouse": "east"},
            format="json",
        )

        assert response.status_code == 400
        assert response.json()["detail"].startswith("delta: cannot remove 1: only 0 on hand")
        assert stock_by_warehouse(hammer.pk) == {"default": (10, 4)}  # no row left behind

    def test_an_unknown_warehouse_is_400(self, staff_client, hammer):
        response = staff_client.post(
            f"/api/products/{hammer.pk}/stock-adjustments/",
            {"delta": 1, "reason": "delivery", "warehouse": "nowhere"},
            format="json",
        )

        assert response.status_code == 400
        assert response.json()["errors"]["warehouse"] == ["no warehouse has the code 'nowhere'."]


class TestLedgerByWarehouse:
    def test_staff_read_one_warehouses_entries(self, staff_client, hammer):
        transfer(staff_client, hammer, 2)
        add_stock(hammer.pk, 1, "east")

        def kinds(query):
            response = staff_client.get(f"/api/products/{hammer.pk}/ledger/{query}")
            assert response.status_code == 200
            return [(e["warehouse"], e["kind"]) for e in response.json()["results"]]

        assert kinds("?warehouse=east") == [("east", "adjustment"), ("east", "transfer")]
        assert kinds("?warehouse=default") == [
            ("default", "transfer"),
            ("default", "reserve"),
            ("default", "adjustment"),
        ]
        assert len(kinds("")) == 5

    def test_an_unknown_warehouse_is_400(self, staff_client, hammer):
        response = staff_client.get(f"/api/products/{hammer.pk}/ledger/?warehouse=nowhere")

        assert response.status_code == 400
        assert "warehouse" in response.json()["errors"]
