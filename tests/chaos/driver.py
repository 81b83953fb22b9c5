"""A steady stream of orders through the public REST APIs, as customers and staff would send.

The mix: most orders ask for one or two products, one to three units each, against stock that
covers only part of the demand, so orders are confirmed early and rejected once a product runs
out (and again confirmed when a cancellation gives units back); one in ten asks for far more
than any stock ("never fits"). Some customers cancel soon after placing; staff ship some
confirmed orders. A request that gets no answer is retried with the same Idempotency-Key, as a
careful client would, so "accepted" means the client holds an order id (202, or 200 on replay).

With ``backorder_products``, that many products allow backorders and staff work beside the
customers: small deliveries of those products (each serves their waiting lists) and transfers
between two warehouses racing the reservations; once every order was sent, staff deliver what
the waiting lists still miss until none is left, so every order ends final. Some customers of
those products cancel later, tired of waiting (4 to 10 s after placing): by then their order
often holds units of a product others wait for, so the inventory worker, releasing them, serves
that product's waiting list (the other cancellations come too early for that).
"""

from __future__ import annotations

import contextlib
import heapq
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from tests.e2e.client import Api

IMPOSSIBLE_QUANTITY = 5_000
REQUEST_TIMEOUT = 15


@dataclass
class Accepted:
    order_id: str
    user_id: int
    lines: list[dict[str, int]]
    at: datetime
    key: str = ""  # the Idempotency-Key every attempt of the request carried


@dataclass
class DriverStats:
    accepted: dict[str, Accepted] = field(default_factory=dict)
    attempted: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    cancels: Counter[str] = field(default_factory=Counter)
    ships: Counter[str] = field(default_factory=Counter)
    staff: Counter[str] = field(default_factory=Counter)  # deliveries and transfers, by outcome
    trickled: int = 0  # of ``attempted``: sent after the planned ones (:meth:`OrderDriver.trickle`)


def _user_id(api: Api) -> int:
    response = api.get(f"{api.users}/api/users/me/")
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


class OrderDriver:
    def __init__(
        self,
        urls: dict[str, str],
        staff_username: str,
        staff_password: str,
        *,
        products: int = 8,
        customers: int = 8,
        seed: int | None = None,
        cancel_share: float = 0.06,
        ship_share: float = 0.06,
        backorder_products: int = 0,
        late_cancel_share: float = 0.12,
    ) -> None:
        self.anonymous = Api(urls["inventory"], urls["orders"], urls["user-notification"])
        self.staff = self.anonymous.as_user(staff_username, staff_password)
        self.product_count = products
        self.customer_count = customers
        self.random = random.Random(seed)
        self.cancel_share = cancel_share
        self.ship_share = ship_share
        self.backorder_products = backorder_products
        self.late_cancel_share = late_cancel_share  # of the orders naming a backorderable product
        self.backorderable: list[int] = []
        self.warehouses = ["default"]
        self.products: list[int] = []
        self.stock_given: dict[int, int] = {}
        self.customers: list[tuple[Api, int]] = []
        self.stats = DriverStats()
        self._lock = threading.Lock()
        self._followups: list[tuple[float, int, str, str]] = []  # (due, seq, action, order)
        self._seq = 0
        self._placing_done = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started_at = 0.0
        self.finished_at = 0.0
        self.placed_at = 0.0  # when the last order was sent (staff may work on after it)

    # --- set-up ---------------------------------------------------------------------------

    def setup(self, total_orders: int, replica_ready: Callable[[set[int]], bool]) -> None:
        """Products with stock for part of the demand, customers, and a warm product replica."""
        normal_units = total_orders * 0.9 * 1.5 * 2  # orders x lines x mean quantity
        per_product = max(5, int(normal_units / self.product_count * 0.55))
        for index in range(self.product_count):
            backorderable = index < self.backorder_products
            # Less of those: their waiting lists form early in the run, not only near its end.
            stock = max(5, per_product // 4) if backorderable else per_product
            product = self.staff.create_product(
                price=f"{self.random.randint(1, 90)}.{self.random.randint(0, 99):02d}",
                stock=stock,
                sku=f"CHAOS-{uuid.uuid4().hex[:8]}-{index}",
                low_stock_threshold=max(1, per_product // 10),
                **({"allow_backorder": True} if backorderable else {}),
            )
            self.products.append(int(product["id"]))
            self.stock_given[int(product["id"])] = stock
            if backorderable:
                self.backorderable.append(int(product["id"]))
        if self.backorder_products:
            code = f"chaos-{uuid.uuid4().hex[:6]}"
            body = {"code": code, "name": "Second", "active": True}
            created = self.staff.post(f"{self.staff.inventory}/api/warehouses/", body)
            assert created.status_code == 201, created.text
            self.warehouses.append(code)
        with ThreadPoolExecutor(max_workers=3) as pool:  # password hashing is the slow part
            apis = list(pool.map(lambda _: self.anonymous.register(), range(self.customer_count)))
        self.customers = [(api, _user_id(api)) for api in apis]
        deadline = time.monotonic() + 60
        while not replica_ready(set(self.products)):
            if time.monotonic() > deadline:
                raise RuntimeError("the orders service never received the products")
            time.sleep(0.2)

    # --- the stream -----------------------------------------------------------------------

    def start(self, total_orders: int, rate: float, threads: int = 6) -> None:
        self.started_at = time.monotonic()
        counter = iter(range(total_orders))
        counter_lock = threading.Lock()
        interval = threads / rate

        def place_loop() -> None:
            next_at = time.monotonic() + self.random.uniform(0, interval)
            while True:
                with counter_lock:
                    if next(counter, None) is None:
                        return
                time.sleep(max(0.0, next_at - time.monotonic()))
                next_at = max(next_at + interval, time.monotonic() - interval)
                self._place_one()

        self._threads = [
            threading.Thread(target=place_loop, name=f"order-{i}", daemon=True)
            for i in range(threads)
        ]
        self._threads.append(threading.Thread(target=self._follow_up, daemon=True))
        if self.backorder_products:
            self._threads.append(threading.Thread(target=self._staff_work, daemon=True))
        for thread in self._threads:
            thread.start()
        threading.Thread(target=self._mark_done, daemon=True).start()

    def _mark_done(self) -> None:
        for thread in self._threads:
            if thread.name.startswith("order-"):
                thread.join()
        self.placed_at = time.monotonic()
        self._placing_done.set()

    @property
    def placed(self) -> int:
        with self._lock:
            return self.stats.attempted

    @property
    def placing_done(self) -> bool:
        return self._placing_done.is_set()

    @contextlib.contextmanager
    def trickle(self, rate: float = 10.0) -> Iterator[None]:
        """While the block runs, once the planned orders were all sent, more orders at ``rate``
        per second: a fault that strikes only in a commit (an armed crash point) still finds
        some after the run's own orders. They count as any other."""
        stop = threading.Event()

        def place_while_stopped_placing() -> None:
            while not stop.wait(1.0 / rate):
                if self._placing_done.is_set():
                    self._place_one()
                    with self._lock:
                        self.stats.trickled += 1

        thread = threading.Thread(target=place_while_stopped_placing, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def join(self, timeout: float | None = None) -> None:
        for thread in self._threads:
            thread.join(timeout)
        self.finished_at = time.monotonic()

    def _order_lines(self) -> list[dict[str, int]]:
        if self.random.random() < 0.1:
            return [
                {"product_id": self.random.choice(self.products), "quantity": IMPOSSIBLE_QUANTITY}
            ]
        chosen = self.random.sample(self.products, self.random.choice((1, 2)))
        return [{"product_id": pid, "quantity": self.random.randint(1, 3)} for pid in chosen]

    def _place_one(self) -> None:
        with self._lock:
            api, user_id = self.random.choice(self.customers)
            lines = self._order_lines()
            self.stats.attempted += 1
        key = str(uuid.uuid4())
        outcome, body = self._post_with_retries(
            api, f"{api.orders}/api/orders/", {"lines": lines}, {"Idempotency-Key": key}
        )
        with self._lock:
            self.stats.outcomes[outcome] += 1
            if outcome in ("202", "200") and body is not None:
                order_id = str(body["id"])
                self.stats.accepted[order_id] = Accepted(
                    order_id, user_id, lines, datetime.now(UTC), key
                )
                roll = self.random.random()
                if roll < self.cancel_share:
                    self._schedule(self.random.uniform(0.0, 2.0), "cancel", order_id)
                elif roll < self.cancel_share + self.ship_share:
                    self._schedule(self.random.uniform(1.0, 4.0), "ship", order_id)
                elif roll < self.cancel_share + self.ship_share + self.late_cancel_share and any(
                    line["product_id"] in self.backorderable for line in lines
                ):
                    self._schedule(self.random.uniform(4.0, 10.0), "cancel", order_id)

    def _post_with_retries(
        self, api: Api, url: str, body: Any, headers: dict[str, str] | None = None
    ) -> tuple[str, dict[str, Any] | None]:
        last = "no answer"
        for attempt in range(6):
            try:
                response = requests.post(
                    url, json=body, headers=api._headers(headers), timeout=REQUEST_TIMEOUT
                )
            except requests.RequestException as exc:
                last = f"error {type(exc).__name__}"
            else:
                if response.status_code < 500:
                    try:
                        payload = response.json()
                    except ValueError:
                        payload = None
                    return str(response.status_code), payload
                last = str(response.status_code)
            time.sleep(0.2 * 2**attempt)
        return last, None

    # --- cancellations and shipments ------------------------------------------------------

    def _schedule(self, delay: float, action: str, order_id: str) -> None:
        self._seq += 1
        heapq.heappush(self._followups, (time.monotonic() + delay, self._seq, action, order_id))

    def _follow_up(self) -> None:
        while True:
            with self._lock:
                due = self._followups[0] if self._followups else None
                if due is not None and due[0] <= time.monotonic():
                    heapq.heappop(self._followups)
                elif due is None and self._placing_done.is_set():
                    return
                else:
                    due = None
            if due is None:
                time.sleep(0.05)
                continue
            _, _, action, order_id = due
            try:
                self._act(action, order_id)
            except requests.RequestException as exc:
                with self._lock:
                    counter = self.stats.cancels if action == "cancel" else self.stats.ships
                    counter[f"error {type(exc).__name__}"] += 1

    def _act(self, action: str, order_id: str) -> None:
        accepted = self.stats.accepted[order_id]
        api = next(a for a, uid in self.customers if uid == accepted.user_id)
        if action == "cancel":
            outcome, _ = self._post_with_retries(
                api, f"{api.orders}/api/orders/{order_id}/cancel/", {}
            )
            with self._lock:
                self.stats.cancels[outcome] += 1
            return
        response = self.staff.get(f"{api.orders}/api/orders/{order_id}/")
        if response.status_code == 200 and response.json()["status"] == "CONFIRMED":
            outcome, _ = self._post_with_retries(
                self.staff, f"{api.orders}/api/orders/{order_id}/ship/", {}
            )
            with self._lock:
                self.stats.ships[outcome] += 1
        else:
            with self._lock:
                self.stats.ships["not confirmed yet"] += 1

    # --- staff: deliveries, transfers, and serving what still waits -------------------------

    def _staff_work(self, every: float = 1.5) -> None:
        while not self._placing_done.wait(every):
            self._deliver(self.random.choice(self.backorderable), self.random.randint(2, 12))
            self._transfer()
            self._transfer()
        deadline = time.monotonic() + 120
        quiet = 0
        while quiet < 3 and time.monotonic() < deadline:  # three looks in a row find no list
            missing = {pid: self._missing(pid) for pid in self.backorderable}
            for product_id, units in missing.items():
                if units:
                    self._deliver(product_id, units)
            quiet = 0 if any(missing.values()) else quiet + 1
            time.sleep(2.0)

    def _deliver(self, product_id: int, units: int) -> None:
        url = f"{self.staff.inventory}/api/products/{product_id}/stock-adjustments/"
        outcome, body = self._post_with_retries(
            self.staff, url, {"delta": units, "reason": "delivery"}
        )
        with self._lock:
            self.stats.staff[f"delivery {outcome}"] += 1
            if outcome == "201" and body is not None:
                self.stock_given[product_id] += units

    def _transfer(self) -> None:
        source, target = self.random.sample(self.warehouses, 2)
        body = {
            "product": self.random.choice(self.products),
            "from_warehouse": source,
            "to_warehouse": target,
            "quantity": self.random.randint(1, 6),
            "reason": "rebalancing",
        }
        url = f"{self.staff.inventory}/api/stock-transfers/"
        outcome, payload = self._post_with_retries(self.staff, url, body)
        code = (payload or {}).get("code", "") if outcome != "201" else ""
        with self._lock:
            self.stats.staff[f"transfer {outcome} {code}".strip()] += 1

    def _missing(self, product_id: int) -> int:
        response = self.staff.get(f"{self.staff.inventory}/api/products/{product_id}/backorders/")
        if response.status_code != 200:
            return 0
        return sum(int(place["quantity"]) for place in response.json())
