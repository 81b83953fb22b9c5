"""Backorders and returns over the running system and its public APIs only: an order for a
product with no stock waits, is confirmed by the delivery alone, ships, and one unit comes back
on the shelf with its refund recorded; deliveries serve the waiting list in arrival order; a
restocked return completes an order waiting for it."""

from __future__ import annotations

from decimal import Decimal

from devstack.system import SERVICES
from tests.e2e.client import Api
from tests.e2e.conftest import E2E
from tests.e2e.test_notifications import kinds, wait_for
from tests.e2e.test_partial_shipments import stock_in, wait_for_stock

INVENTORY = SERVICES[0]
DEFAULT_WAREHOUSE = "default"


def backorderable(staff: Api, price: str = "7.50") -> int:
    """A new product that allows backorders, with no stock."""
    product = staff.create_product(price=price, allow_backorder=True)
    assert product["allow_backorder"] is True
    return int(product["id"])


def order_one(customer: Api, product_id: int, status: set[str]) -> str:
    placed = customer.place_order([{"product_id": product_id, "quantity": 1}])
    assert placed.status_code == 202, placed.text
    order_id = str(placed.json()["id"])
    customer.wait_for_status(order_id, status)
    return order_id


def return_one(customer: Api, order_id: str, product_id: int) -> dict:
    asked = customer.post(
        f"{customer.orders}/api/orders/{order_id}/returns/",
        {"lines": [{"product_id": product_id, "quantity": 1}], "reason": "too small"},
    )
    assert asked.status_code == 201, asked.text
    return dict(asked.json())


def receive_restocked(staff: Api, return_id: int, product_id: int) -> dict:
    received = staff.post(
        f"{staff.orders}/api/returns/{return_id}/receive/",
        {
            "warehouse": DEFAULT_WAREHOUSE,
            "lines": [{"product_id": product_id, "restocked": 1, "damaged": 0}],
        },
    )
    assert received.status_code == 200, received.text
    return dict(received.json())


def place_in_line(customer: Api, order_id: str) -> list[tuple[int, int, int]]:
    """(product id, units missing, place) of each product the order still waits for."""
    response = customer.get(f"{customer.inventory}/api/backorders/{order_id}/")
    assert response.status_code == 200, response.text
    return [
        (line["product_id"], line["missing"], line["place"]) for line in response.json()["lines"]
    ]


def ledger_kinds(staff: Api, product_id: int) -> list[str]:
    """The kinds of a product's ledger entries, newest first."""
    response = staff.get(f"{staff.inventory}/api/products/{product_id}/ledger/")
    assert response.status_code == 200, response.text
    return [entry["kind"] for entry in response.json()["results"]]


def test_a_backorder_is_confirmed_by_the_delivery_ships_and_comes_back(
    e2e: E2E, staff: Api, customer: Api
) -> None:
    """The issue's walk: BACKORDERED, stock added, CONFIRMED with nothing else done, shipped,
    one unit returned as restock: the refund recorded and the unit back on hand."""
    product_id = backorderable(staff)
    order_id = order_one(customer, product_id, {"BACKORDERED"})
    assert place_in_line(customer, order_id) == [(product_id, 1, 1)]
    assert staff.product(product_id)["backordered"] == 1
    wait_for(lambda: "order_backordered" in kinds(customer, order_id), "'waiting on backorder'")

    staff.adjust_stock(product_id, 1, "delivery")

    customer.wait_for_status(order_id, {"CONFIRMED"})
    wait_for_stock(staff, product_id, {DEFAULT_WAREHOUSE: (1, 1)})
    assert staff.product(product_id)["backordered"] == 0

    shipped = staff.post(f"{staff.orders}/api/orders/{order_id}/ship/")
    assert shipped.status_code == 200, shipped.text
    assert customer.order(order_id)["status"] == "SHIPPED"
    wait_for_stock(staff, product_id, {DEFAULT_WAREHOUSE: (0, 0)})

    asked = return_one(customer, order_id, product_id)
    assert asked["status"] == "REQUESTED"
    received = receive_restocked(staff, int(asked["id"]), product_id)

    assert received["status"] == "RECEIVED"
    assert Decimal(received["refund_amount"]) == Decimal("7.50")
    order = customer.order(order_id)
    assert Decimal(order["refunded_total"]) == Decimal("7.50")
    assert [line["returned_quantity"] for line in order["lines"]] == [1]
    wait_for_stock(staff, product_id, {DEFAULT_WAREHOUSE: (1, 0)})
    assert ledger_kinds(staff, product_id)[0] == "return"
    told_of_return = {"return_requested", "return_received", "return_refunded"}
    wait_for(lambda: told_of_return <= set(kinds(customer, order_id)), "the return's notices")
    told = kinds(customer, order_id)
    assert told.count("order_confirmed") == 1 and told.count("return_refunded") == 1
    assert e2e.system.manage(INVENTORY, "reconcile_stock").returncode == 0


def test_six_units_in_three_deliveries_confirm_the_first_six_of_ten_waiting(
    e2e: E2E, staff: Api, customer: Api
) -> None:
    product_id = backorderable(staff)
    orders = [order_one(customer, product_id, {"BACKORDERED"}) for _ in range(10)]

    for _ in range(3):
        staff.adjust_stock(product_id, 2, "delivery of 2")

    for order_id in orders[:6]:
        customer.wait_for_status(order_id, {"CONFIRMED"})
    assert [customer.order(order_id)["status"] for order_id in orders[6:]] == ["BACKORDERED"] * 4
    assert [place_in_line(customer, order_id) for order_id in orders[6:]] == [
        [(product_id, 1, place)] for place in (1, 2, 3, 4)
    ]
    assert stock_in(staff, product_id)[DEFAULT_WAREHOUSE] == (6, 6)
    assert staff.product(product_id)["backordered"] == 4
    assert e2e.system.manage(INVENTORY, "reconcile_stock").returncode == 0


def test_a_restocked_return_confirms_an_order_waiting_for_it(
    e2e: E2E, staff: Api, customer: Api
) -> None:
    product_id = backorderable(staff)
    staff.adjust_stock(product_id, 1, "the only unit")
    shipped_order = order_one(customer, product_id, {"CONFIRMED"})
    assert staff.post(f"{staff.orders}/api/orders/{shipped_order}/ship/").status_code == 200
    waiting = order_one(customer, product_id, {"BACKORDERED"})

    asked = return_one(customer, shipped_order, product_id)
    receive_restocked(staff, int(asked["id"]), product_id)

    customer.wait_for_status(waiting, {"CONFIRMED"})
    wait_for_stock(staff, product_id, {DEFAULT_WAREHOUSE: (1, 1)})
    assert e2e.system.manage(INVENTORY, "reconcile_stock").returncode == 0


def test_a_damaged_return_does_not_restock(e2e: E2E, staff: Api, customer: Api) -> None:
    product_id = backorderable(staff)
    staff.adjust_stock(product_id, 1, "the only unit")
    order_id = order_one(customer, product_id, {"CONFIRMED"})
    assert staff.post(f"{staff.orders}/api/orders/{order_id}/ship/").status_code == 200
    waiting = order_one(customer, product_id, {"BACKORDERED"})
    asked = return_one(customer, order_id, product_id)

    received = staff.post(
        f"{staff.orders}/api/returns/{asked['id']}/receive/",
        {
            "warehouse": DEFAULT_WAREHOUSE,
            "lines": [{"product_id": product_id, "restocked": 0, "damaged": 1}],
        },
    )

    assert received.status_code == 200, received.text
    assert Decimal(received.json()["refund_amount"]) == Decimal("7.50")
    wait_for(lambda: "write_off" in ledger_kinds(staff, product_id), "the write-off")
    assert "return" not in ledger_kinds(staff, product_id)
    assert stock_in(staff, product_id)[DEFAULT_WAREHOUSE] == (0, 0)
    assert customer.order(waiting)["status"] == "BACKORDERED"
    assert e2e.system.manage(INVENTORY, "reconcile_stock").returncode == 0


def test_more_than_shipped_cannot_be_returned(staff: Api, customer: Api) -> None:
    product_id = backorderable(staff)
    staff.adjust_stock(product_id, 1, "the only unit")
    order_id = order_one(customer, product_id, {"CONFIRMED"})
    assert staff.post(f"{staff.orders}/api/orders/{order_id}/ship/").status_code == 200

    refused = customer.post(
        f"{customer.orders}/api/orders/{order_id}/returns/",
        {"lines": [{"product_id": product_id, "quantity": 2}], "reason": "two?"},
    )

    assert refused.status_code == 400, refused.text
    assert refused.json()["code"]
