"""``make demo``'s seeding (``devstack.seed``) against the running system, through its gateway,
twice: every order state exists once, nothing doubles, and the accounts it prints sign in."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.demo import Accounts, summary
from devstack.seed import ORDERS, PRODUCTS, WAREHOUSES, Account, Seeded, seed
from tests.e2e.conftest import E2E
from tests.e2e.harness import STAFF_PASSWORD, STAFF_USERNAME

# Each product once the seeding has settled (the received return restocked in inventory):
# (on hand, reserved, backordered), from the orders in devstack.seed.ORDERS.
SETTLED = {
    "DEMO-MUG": (59, 4, 0),  # 60; 1 shipped of the partial order, 1 shipped and restocked
    "DEMO-TEAPOT": (9, 1, 0),  # 10; 1 shipped; 1 held by the partly shipped order
    "DEMO-CUP": (27, 1, 0),  # 30; 4 shipped, 3 restocked, 1 damaged; 2 shipped; 1 held
    "DEMO-LAMP": (3, 0, 0),  # the order for 10 rejected
    "DEMO-GRINDER": (0, 0, 2),  # none in stock: 2 units waiting
}
STATUSES = Counter(
    {"CONFIRMED": 1, "REJECTED": 1, "BACKORDERED": 1, "PARTIALLY_SHIPPED": 1}
    | {"SHIPPED": 3, "CANCELLED": 1}
)


def sign_in(url: str, username: str, password: str) -> requests.Session:
    response = requests.post(
        f"{url}/api/users/token/", json={"username": username, "password": password}, timeout=10
    )
    assert response.status_code == 200, response.text
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {response.json()['access']}"
    return session


def levels(url: str) -> dict[str, tuple[int, int, int]]:
    found = {}
    for product in PRODUCTS:
        page = requests.get(f"{url}/api/products/", params={"sku": product.sku}, timeout=10)
        [item] = page.json()["results"]  # one product per SKU
        found[product.sku] = (item["on_hand"], item["reserved"], item["backordered"])
    return found


def settled(url: str, timeout: float = 30.0) -> dict[str, tuple[int, int, int]]:
    deadline = time.monotonic() + timeout
    while (found := levels(url)) != SETTLED and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def what_exists(url: str, staff: requests.Session, customer: requests.Session) -> dict[str, Any]:
    orders = customer.get(f"{url}/api/orders/", params={"page_size": 100}, timeout=10).json()
    returns = {}
    for order in orders["results"]:
        page = customer.get(f"{url}/api/orders/{order['id']}/returns/", timeout=10).json()
        found = page["results"] if isinstance(page, dict) else page
        returns[order["id"]] = [(r["status"], r["refund_amount"]) for r in found]
    warehouses = staff.get(f"{url}/api/warehouses/", params={"page_size": 200}, timeout=10).json()
    categories = staff.get(f"{url}/api/categories/", params={"page_size": 200}, timeout=10).json()
    return {
        "orders": sorted((o["id"], o["status"]) for o in orders["results"]),
        "returns": returns,
        "warehouses": sorted(w["code"] for w in warehouses["results"]),
        "categories": sorted(c["name"] for c in categories["results"]),
        "levels": levels(url),
    }


def printed_accounts(out: str) -> dict[str, tuple[str, str]]:
    found = re.findall(r"^\s+(staff|customer)\s+username (\S+)\s+password (\S+)$", out, re.M)
    return {role: (username, password) for role, username, password in found}


class TestDemoSeeding:
    def test_seeding_twice_makes_every_state_once_and_prints_accounts_that_sign_in(
        self, e2e: E2E, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        url = e2e.system.url("gateway")
        staff = Account(STAFF_USERNAME, STAFF_PASSWORD, "staff@example.test")
        accounts = Accounts.load_or_create(tmp_path / "demo-accounts.json", staff)

        said: list[str] = []
        first = seed(url, accounts.staff, accounts.customer, say=said.append)
        print(summary(url, accounts, first))
        assert sum("created" in line for line in said) == len(WAREHOUSES) + len(PRODUCTS)
        deliveries = sum(len(product.stock) for product in PRODUCTS)
        assert sum("delivered" in line for line in said) == deliveries
        assert settled(url) == SETTLED
        out = capsys.readouterr().out
        assert printed_accounts(out) == {
            "staff": (STAFF_USERNAME, STAFF_PASSWORD),
            "customer": (accounts.customer.username, accounts.customer.password),
        }
        customer = sign_in(url, *printed_accounts(out)["customer"])
        admin = sign_in(url, *printed_accounts(out)["staff"])
        before = what_exists(url, admin, customer)

        self.check_states(url, first, customer, before)
        assert set(before["warehouses"]) >= {w.code for w in WAREHOUSES}

        again = Accounts.load_or_create(tmp_path / "demo-accounts.json", staff)
        assert again == accounts  # the same customer, not a new one
        said.clear()
        second = seed(url, again.staff, again.customer, say=said.append)
        print(summary(url, again, second))
        out = capsys.readouterr().out
        # only each order found in its state: nothing created, registered, asked or received
        assert len(said) == len(ORDERS) and all(line.startswith("order ") for line in said)
        assert second == first
        assert what_exists(url, admin, customer) == before
        assert settled(url) == SETTLED
        assert printed_accounts(out)["customer"] == (
            accounts.customer.username,
            accounts.customer.password,
        )

    def check_states(
        self, url: str, seeded: Seeded, customer: requests.Session, exists: dict[str, Any]
    ) -> None:
        assert set(seeded.orders) == {order.state for order in ORDERS}
        assert Counter(status for _, status in exists["orders"]) == STATUSES
        assert len(exists["orders"]) == len(ORDERS)
        returned, requested = seeded.orders["returned"], seeded.orders["return_requested"]
        # 4 cups at 6.00 and a mug at 12.50, every unit refunded (restocked or damaged)
        assert exists["returns"][returned] == [("RECEIVED", "36.50")]
        assert exists["returns"][requested] == [("REQUESTED", None)]
        assert sum(len(r) for r in exists["returns"].values()) == 2
        order = customer.get(f"{url}/api/orders/{returned}/", timeout=10).json()
        assert order["refunded_total"] == "36.50"
        assert {line["returned_quantity"] for line in order["lines"]} == {4, 1}
        places = customer.get(f"{url}/api/backorders/{seeded.orders['backordered']}/", timeout=10)
        assert places.status_code == 200, places.text
        assert [(line["missing"], line["place"]) for line in places.json()["lines"]] == [(2, 1)]
