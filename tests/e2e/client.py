"""A small HTTP client for the system's public APIs, as any customer or operator would use."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import requests

FINAL_STATUSES = {"CONFIRMED", "REJECTED", "CANCELLED", "SHIPPED"}


@dataclass
class Api:
    inventory: str
    orders: str
    users: str
    token: str | None = None

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**headers, **(extra or {})}

    def get(self, url: str, **params: Any) -> requests.Response:
        return requests.get(url, headers=self._headers(), params=params, timeout=10)

    def post(
        self, url: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> requests.Response:
        return requests.post(url, json=body, headers=self._headers(headers), timeout=30)

    def as_user(self, username: str, password: str) -> Api:
        response = requests.post(
            f"{self.users}/api/users/token/",
            json={"username": username, "password": password},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return Api(self.inventory, self.orders, self.users, response.json()["access"])

    def register(self, username: str | None = None) -> Api:
        username = username or f"customer-{uuid.uuid4().hex[:10]}"
        password = f"pw-{uuid.uuid4().hex}"
        response = requests.post(
            f"{self.users}/api/users/register/",
            json={"username": username, "email": f"{username}@example.test", "password": password},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return self.as_user(username, password)

    # inventory
    def create_product(self, *, price: str = "10.00", stock: int = 0, **fields: Any) -> dict:
        sku = fields.pop("sku", f"SKU-{uuid.uuid4().hex[:10]}")
        body = {"sku": sku, "name": f"Product {sku}", "price": price, **fields}
        response = self.post(f"{self.inventory}/api/products/", body)
        assert response.status_code == 201, response.text
        product: dict = response.json()
        if stock:
            self.adjust_stock(product["id"], stock, "initial stock")
        return product

    def adjust_stock(self, product_id: int, delta: int, reason: str) -> dict:
        response = self.post(
            f"{self.inventory}/api/products/{product_id}/stock-adjustments/",
            {"delta": delta, "reason": reason},
        )
        assert response.status_code in (200, 201), response.text
        return dict(response.json())

    def product(self, product_id: int) -> dict:
        response = self.get(f"{self.inventory}/api/products/{product_id}/")
        assert response.status_code == 200, response.text
        return dict(response.json())

    # orders
    def place_order(
        self, lines: list[dict[str, int]], key: str | None = None, wait_for_replica: float = 15.0
    ) -> requests.Response:
        """POST an order; while the product is still unknown to the orders service, try again."""
        key = key or str(uuid.uuid4())
        deadline = time.monotonic() + wait_for_replica
        while True:
            response = self.post(
                f"{self.orders}/api/orders/", {"lines": lines}, {"Idempotency-Key": key}
            )
            if response.status_code != 400 or time.monotonic() > deadline:
                return response
            time.sleep(0.1)

    def order(self, order_id: str) -> dict:
        response = self.get(f"{self.orders}/api/orders/{order_id}/")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_for_status(self, order_id: str, statuses: set[str], timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            order = self.order(order_id)
            if order["status"] in statuses:
                return order
            if time.monotonic() > deadline:
                raise AssertionError(f"order {order_id} still {order['status']} after {timeout}s")
            time.sleep(0.05)

    def wait_for_product(self, product_id: int, timeout: float = 15.0, **expected: int) -> dict:
        """Poll the product until every expected field (on_hand, reserved, ...) matches."""
        deadline = time.monotonic() + timeout
        while True:
            product = self.product(product_id)
            if all(product[name] == value for name, value in expected.items()):
                return product
            if time.monotonic() > deadline:
                raise AssertionError(f"product {product_id} is {product}, expected {expected}")
            time.sleep(0.05)
