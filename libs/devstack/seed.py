"""The demonstration data of ``make demo``, written through the public HTTP APIs only (the
gateway's address), as staff and a customer would: warehouses, a small catalogue with stock, and
the customer's orders in every state.

Running it again adds nothing: warehouses are looked up by code, categories by name, products
by SKU, a product's first stock delivery to each warehouse by its reason in the ledger, the
customer by username, orders by their idempotency key, and each order is only moved on from
where it stands (a return is asked for only when the order has none).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

WAIT_SECONDS = 60.0
POLL_SECONDS = 0.2
REPLICA_WAIT_SECONDS = 30.0  # until the orders service has heard of a new product
DELIVERY_REASON = "demo: first delivery"  # how the ledger tells a product's stock was seeded


class SeedError(RuntimeError):
    """The system refused or did not do what the demonstration needs."""


@dataclass(frozen=True)
class Account:
    username: str
    password: str
    email: str


@dataclass(frozen=True)
class Warehouse:
    code: str
    name: str
    priority: int


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    price: str
    category: str
    stock: dict[str, int]  # units delivered per warehouse code when the product is created
    allow_backorder: bool = False
    low_stock_threshold: int = 0


@dataclass(frozen=True)
class OrderSeed:
    """One of the customer's orders: ``state`` is what it is brought to."""

    state: str
    lines: tuple[tuple[str, int], ...]  # (sku, quantity)

    @property
    def key(self) -> str:
        return f"demo-{self.state}"


WAREHOUSES = (Warehouse("north", "North depot", 20), Warehouse("south", "South depot", 10))
PRODUCTS = (
    Product("DEMO-MUG", "Enamel mug", "12.50", "Kitchen", {"north": 40, "south": 20}),
    Product("DEMO-TEAPOT", "Cast-iron teapot", "48.00", "Kitchen", {"north": 6, "south": 4}),
    Product("DEMO-CUP", "Espresso cup", "6.00", "Kitchen", {"south": 30}, allow_backorder=True),
    Product("DEMO-LAMP", "Desk lamp", "35.00", "Home", {"north": 3}, low_stock_threshold=5),
    Product("DEMO-GRINDER", "Coffee grinder", "89.00", "Kitchen", {}, allow_backorder=True),
)
# The order in which they are placed matters: none takes stock another one needs.
ORDERS = (
    OrderSeed("confirmed", (("DEMO-MUG", 2),)),
    OrderSeed("rejected", (("DEMO-LAMP", 10),)),
    OrderSeed("backordered", (("DEMO-GRINDER", 2), ("DEMO-CUP", 1))),
    OrderSeed("partially_shipped", (("DEMO-MUG", 3), ("DEMO-TEAPOT", 1))),
    OrderSeed("shipped", (("DEMO-TEAPOT", 1),)),
    OrderSeed("cancelled", (("DEMO-MUG", 1),)),
    OrderSeed("returned", (("DEMO-CUP", 4), ("DEMO-MUG", 1))),
    OrderSeed("return_requested", (("DEMO-CUP", 2),)),
)
# The order status each seed ends in (a return leaves its order SHIPPED).
FINAL_STATUS = {
    "confirmed": "CONFIRMED",
    "rejected": "REJECTED",
    "backordered": "BACKORDERED",
    "partially_shipped": "PARTIALLY_SHIPPED",
    "shipped": "SHIPPED",
    "cancelled": "CANCELLED",
    "returned": "SHIPPED",
    "return_requested": "SHIPPED",
}


class Client:
    """One signed-in (or anonymous) user of the gateway; any answer but ``ok`` raises."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, ok: Iterable[int] = (200, 201, 202), **kw: Any) -> Any:
        response = self.session.request(method, f"{self.base_url}{path}", timeout=30, **kw)
        if response.status_code not in ok:
            raise SeedError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

    def sign_in(self, account: Account) -> Client:
        tokens = self.call(
            "POST",
            "/api/users/token/",
            json={"username": account.username, "password": account.password},
        )
        return Client(self.base_url, tokens["access"])


@dataclass
class Seeded:
    """What the demonstration holds: ids by warehouse code, SKU and order state."""

    warehouses: dict[str, int] = field(default_factory=dict)
    products: dict[str, int] = field(default_factory=dict)
    orders: dict[str, str] = field(default_factory=dict)
    returns: dict[str, Any] = field(default_factory=dict)


Say = Callable[[str], None]


def seed(base_url: str, staff: Account, customer: Account, say: Say = print) -> Seeded:
    """Bring the system at ``base_url`` (the gateway) to the demonstration's state."""
    anonymous = Client(base_url)
    admin = anonymous.sign_in(staff)
    seeded = Seeded()
    for warehouse in WAREHOUSES:
        seeded.warehouses[warehouse.code] = _warehouse(admin, warehouse, say)
    categories: dict[str, int] = {}
    for product in PRODUCTS:
        if product.category not in categories:
            categories[product.category] = _category(admin, product.category)
        seeded.products[product.sku] = _product(admin, product, categories[product.category], say)
    shopper = _customer(anonymous, customer, say)
    for order in ORDERS:
        seeded.orders[order.state] = _order(admin, shopper, order, seeded.products, say)
        if order.state in ("returned", "return_requested"):
            seeded.returns[order.state] = _return(
                admin, shopper, seeded.orders[order.state], order.state == "returned", say
            )
    return seeded


def _results(page: Any) -> list[dict[str, Any]]:
    return list(page["results"] if isinstance(page, dict) else page)


def _warehouse(admin: Client, warehouse: Warehouse, say: Say) -> int:
    for known in _results(admin.call("GET", "/api/warehouses/", params={"page_size": 200})):
        if known["code"] == warehouse.code:
            return int(known["id"])
    body = {"code": warehouse.code, "name": warehouse.name, "priority": warehouse.priority}
    created = admin.call("POST", "/api/warehouses/", json=body)
    say(f"warehouse {warehouse.code} ({warehouse.name}) created")
    return int(created["id"])


def _category(admin: Client, name: str) -> int:
    for known in _results(admin.call("GET", "/api/categories/", params={"page_size": 200})):
        if known["name"] == name:
            return int(known["id"])
    return int(admin.call("POST", "/api/categories/", json={"name": name})["id"])


def _product(admin: Client, product: Product, category: int, say: Say) -> int:
    found = _results(admin.call("GET", "/api/products/", params={"sku": product.sku}))
    if found:
        product_id = int(found[0]["id"])
    else:
        product_id = _new_product(admin, product, category)
        say(f"product {product.sku} ({product.name}) created")
    for code, units in product.stock.items():
        if not _delivered(admin, product_id, code):
            admin.call(
                "POST",
                f"/api/products/{product_id}/stock-adjustments/",
                json={"delta": units, "reason": DELIVERY_REASON, "warehouse": code},
            )
            say(f"product {product.sku}: {units} units delivered to {code}")
    return product_id


def _delivered(admin: Client, product_id: int, warehouse: str) -> bool:
    """Whether the product's first delivery to the warehouse is in its ledger (read to the
    oldest entry: the ledger is listed newest first)."""
    params = {"warehouse": warehouse, "page_size": 200}
    while True:
        page = admin.call("GET", f"/api/products/{product_id}/ledger/", params=params)
        if any(entry["reason"] == DELIVERY_REASON for entry in page["results"]):
            return True
        if not page.get("next"):
            return False
        params["cursor"] = parse_qs(urlsplit(page["next"]).query)["cursor"][0]


def _new_product(admin: Client, product: Product, category: int) -> int:
    created = admin.call(
        "POST",
        "/api/products/",
        json={
            "sku": product.sku,
            "name": product.name,
            "price": product.price,
            "category": category,
            "allow_backorder": product.allow_backorder,
            "low_stock_threshold": product.low_stock_threshold,
        },
    )
    return int(created["id"])


def _customer(anonymous: Client, customer: Account, say: Say) -> Client:
    body = {"username": customer.username, "email": customer.email, "password": customer.password}
    response = anonymous.session.post(
        f"{anonymous.base_url}/api/users/register/", json=body, timeout=30
    )
    if response.status_code == 201:
        say(f"customer {customer.username} registered")
    elif response.status_code != 400 or "username" not in response.json().get("errors", {}):
        raise SeedError(f"registering {customer.username}: {response.status_code} {response.text}")
    try:
        return anonymous.sign_in(customer)
    except SeedError as exc:
        raise SeedError(
            f"the account {customer.username} exists with another password "
            "(`make clean` starts the demonstration afresh)"
        ) from exc


def _wait(client: Client, order_id: str, until: Callable[[dict[str, Any]], bool]) -> dict:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        order: dict[str, Any] = client.call("GET", f"/api/orders/{order_id}/")
        if until(order):
            return order
        if time.monotonic() > deadline:
            raise SeedError(f"order {order_id} is still {order['status']}")
        time.sleep(POLL_SECONDS)


def _status(client: Client, order_id: str, *statuses: str) -> dict:
    return _wait(client, order_id, lambda o: o["status"] in statuses)


def _place(shopper: Client, seed: OrderSeed, products: dict[str, int]) -> dict:
    lines = [{"product_id": products[sku], "quantity": units} for sku, units in seed.lines]
    deadline = time.monotonic() + REPLICA_WAIT_SECONDS
    while True:  # a product created a moment ago may not have reached the orders service yet
        response = shopper.session.post(
            f"{shopper.base_url}/api/orders/",
            json={"lines": lines},
            headers={"Idempotency-Key": seed.key},
            timeout=30,
        )
        if response.status_code in (200, 202):
            return dict(response.json())
        if response.status_code != 400 or time.monotonic() > deadline:
            raise SeedError(
                f"placing the {seed.state} order: {response.status_code} {response.text}"
            )
        time.sleep(0.5)


def _order(
    admin: Client, shopper: Client, seed: OrderSeed, products: dict[str, int], say: Say
) -> str:
    order = _place(shopper, seed, products)
    order_id = str(order["id"])
    target = FINAL_STATUS[seed.state]
    decided = ("CONFIRMED", "REJECTED", "BACKORDERED", "PARTIALLY_SHIPPED", "SHIPPED", "CANCELLED")
    order = _status(admin, order_id, *decided)
    if order["status"] == "CONFIRMED" and target != "CONFIRMED":
        order = _move_on(admin, order, seed, products)
    if order["status"] != target:
        raise SeedError(f"the {seed.state} order {order_id} is {order['status']}, not {target}")
    say(f"order {order_id[:8]} {order['status']} (the {seed.state.replace('_', ' ')} one)")
    return order_id


def _move_on(admin: Client, order: dict, seed: OrderSeed, products: dict[str, int]) -> dict:
    """From CONFIRMED to the seed's state: ship one unit of its first line (from where it is
    held), all of it, or cancel it."""
    order_id = order["id"]
    if seed.state == "cancelled":
        admin.call("POST", f"/api/orders/{order_id}/cancel/")
        return _status(admin, order_id, "CANCELLED")
    if seed.state == "partially_shipped":
        product_id = products[seed.lines[0][0]]
        order = _wait(admin, order_id, lambda o: bool(o.get("allocations")))
        held = next(a for a in order["allocations"] if a["product_id"] == product_id)
        body = {
            "warehouse": held["warehouse"],
            "lines": [{"product_id": product_id, "quantity": 1}],
        }
        admin.call("POST", f"/api/orders/{order_id}/shipments/", json=body)
        return _status(admin, order_id, "PARTIALLY_SHIPPED")
    admin.call("POST", f"/api/orders/{order_id}/ship/")
    return _status(admin, order_id, "SHIPPED")


def _return(admin: Client, shopper: Client, order_id: str, receive: bool, say: Say) -> dict:
    """The order's one return: asked for by the customer (every unit shipped, once), and when
    ``receive``, received by staff into the first warehouse: one unit of its first line damaged,
    the rest restocked."""
    existing = _results(shopper.call("GET", f"/api/orders/{order_id}/returns/"))
    if existing:
        ret = existing[0]
    else:
        order = shopper.call("GET", f"/api/orders/{order_id}/")
        lines = [
            {"product_id": line["product_id"], "quantity": line["shipped_quantity"]}
            for line in order["lines"]
        ]
        body = {"lines": lines, "reason": "demo: not what I expected"}
        ret = shopper.call("POST", f"/api/orders/{order_id}/returns/", json=body)
        say(f"return {str(ret['id'])[:8]} requested for order {order_id[:8]}")
    if receive and ret["status"] == "REQUESTED":
        lines = [
            {
                "product_id": line["product_id"],
                "restocked": line["quantity"] - (1 if index == 0 else 0),
                "damaged": 1 if index == 0 else 0,
            }
            for index, line in enumerate(ret["lines"])
        ]
        body = {"warehouse": WAREHOUSES[0].code, "lines": lines}
        ret = admin.call("POST", f"/api/returns/{ret['id']}/receive/", json=body)
        say(f"return {str(ret['id'])[:8]} received: {ret['refund_amount']} refunded")
    return dict(ret)
