"""Shipping an order in parts from two warehouses, over the running system and its public
APIs only (the system publishes the newest event versions: stock.reserved and order.shipped
v2): the allocation orders shows, each part leaving its own warehouse's stock, what the
customer is told, a cancel after the first part, and a rush of orders for the last units of
two warehouses."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from devstack.system import SERVICES
from tests.e2e.client import FINAL_STATUSES, Api
from tests.e2e.conftest import E2E
from tests.e2e.test_notifications import kinds, wait_for

INVENTORY = SERVICES[0]


def create_warehouse(staff: Api, priority: int) -> str:
    """A new warehouse (a code no other test uses); its code."""
    code = f"wh-{uuid.uuid4().hex[:8]}"
    body = {"code": code, "name": f"Warehouse {code}", "priority": priority}
    response = staff.post(f"{staff.inventory}/api/warehouses/", body)
    assert response.status_code == 201, response.text
    return code


def put_stock(staff: Api, product_id: int, warehouse: str, units: int) -> None:
    response = staff.post(
        f"{staff.inventory}/api/products/{product_id}/stock-adjustments/",
        {"delta": units, "reason": "delivery", "warehouse": warehouse},
    )
    assert response.status_code in (200, 201), response.text


def stock_in(staff: Api, product_id: int) -> dict[str, tuple[int, int]]:
    """(on_hand, reserved) per warehouse code, from the product's per-warehouse breakdown."""
    product = staff.product(product_id)
    return {row["warehouse"]: (row["on_hand"], row["reserved"]) for row in product["warehouses"]}


def wait_for_stock(staff: Api, product_id: int, expected: dict[str, tuple[int, int]]) -> None:
    def matches() -> bool:
        found = stock_in(staff, product_id)
        return all(found.get(code) == units for code, units in expected.items())

    wait_for(matches, f"product {product_id}'s stock to be {expected}")


def ship_part(staff: Api, order_id: str, warehouse: str, product_id: int, units: int) -> dict:
    response = staff.post(
        f"{staff.orders}/api/orders/{order_id}/shipments/",
        {"warehouse": warehouse, "lines": [{"product_id": product_id, "quantity": units}]},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def split_order(staff: Api, customer: Api) -> tuple[int, str, str, str]:
    """Two new warehouses, the preferred one with 3 units of a new product, the other with 2;
    a customer's order of 5, confirmed. Returns (product id, first, second, order id)."""
    first = create_warehouse(staff, priority=1_000_000)
    second = create_warehouse(staff, priority=999_999)
    product_id = int(staff.create_product(price="4.00")["id"])
    put_stock(staff, product_id, first, 3)
    put_stock(staff, product_id, second, 2)
    placed = customer.place_order([{"product_id": product_id, "quantity": 5}])
    assert placed.status_code == 202, placed.text
    order_id = str(placed.json()["id"])
    customer.wait_for_status(order_id, {"CONFIRMED"})
    return product_id, first, second, order_id


def test_an_order_split_over_two_warehouses_ships_in_two_parts(
    e2e: E2E, staff: Api, customer: Api
) -> None:
    product_id, first, second, order_id = split_order(staff, customer)

    order = customer.order(order_id)
    held = sorted((a["warehouse"], a["quantity"]) for a in order["allocations"])
    assert held == sorted([(first, 3), (second, 2)])
    assert stock_in(staff, product_id)[first] == (3, 3)
    assert stock_in(staff, product_id)[second] == (2, 2)

    ship_part(staff, order_id, first, product_id, 3)

    assert customer.order(order_id)["status"] == "PARTIALLY_SHIPPED"
    wait_for_stock(staff, product_id, {first: (0, 0), second: (2, 2)})
    wait_for(lambda: "order_partially_shipped" in kinds(customer, order_id), "'part has shipped'")

    ship_part(staff, order_id, second, product_id, 2)

    assert customer.order(order_id)["status"] == "SHIPPED"
    wait_for_stock(staff, product_id, {first: (0, 0), second: (0, 0)})
    wait_for(lambda: "order_shipped" in kinds(customer, order_id), "'shipped'")
    product = staff.product(product_id)
    assert (product["on_hand"], product["reserved"]) == (0, 0)
    told = kinds(customer, order_id)
    assert told.count("order_partially_shipped") == 1 and told.count("order_shipped") == 1
    assert e2e.system.manage(INVENTORY, "reconcile_stock").returncode == 0


def test_cancelling_after_the_first_part_releases_the_rest_where_it_is_held(
    e2e: E2E, staff: Api, customer: Api
) -> None:
    product_id, first, second, order_id = split_order(staff, customer)
    ship_part(staff, order_id, first, product_id, 3)
    wait_for_stock(staff, product_id, {first: (0, 0), second: (2, 2)})

    cancelled = customer.post(f"{customer.orders}/api/orders/{order_id}/cancel/")
    assert cancelled.status_code == 200, cancelled.text

    wait_for_stock(staff, product_id, {first: (0, 0), second: (2, 0)})
    product = staff.product(product_id)
    assert (product["on_hand"], product["reserved"]) == (2, 0)
    assert e2e.system.manage(INVENTORY, "reconcile_stock").returncode == 0


def test_two_hundred_orders_for_the_last_units_of_two_warehouses(e2e: E2E, staff: Api) -> None:
    first = create_warehouse(staff, priority=1_000_000)
    second = create_warehouse(staff, priority=999_999)
    product_id = int(staff.create_product(price="1.00")["id"])
    put_stock(staff, product_id, first, 5)
    put_stock(staff, product_id, second, 5)
    customers = [e2e.anonymous.register() for _ in range(10)]

    def place(index: int) -> str:
        response = customers[index % 10].place_order([{"product_id": product_id, "quantity": 1}])
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    with ThreadPoolExecutor(max_workers=20) as pool:
        order_ids = list(pool.map(place, range(200)))
    final = [staff.wait_for_status(oid, FINAL_STATUSES, timeout=120) for oid in order_ids]

    statuses = [order["status"] for order in final]
    assert statuses.count("CONFIRMED") == 10
    assert statuses.count("REJECTED") == 190
    wait_for_stock(staff, product_id, {first: (5, 5), second: (5, 5)})
    for on_hand, reserved in stock_in(staff, product_id).values():
        assert 0 <= reserved <= on_hand
    assert e2e.system.manage(INVENTORY, "reconcile_stock").returncode == 0
