"""A rolling upgrade: the system starts at an older version, then inventory, orders and
user-notification are replaced by this checkout's version one at a time while customers keep
placing orders. Services are deployed independently, so every event either version publishes
must be read by the other (docs/operations.md, "Upgrades: one service at a time"): nothing may
be lost, dead-lettered or oversold on the way.
"""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import requests

from devstack import stack
from devstack.system import ONE_RELEASE_VERSIONS, SERVICES, VERSIONS_ENV
from messaging import schemas, versions
from messaging.topology import Names
from service_runtime.settings import REPO_ROOT
from tests.e2e.client import FINAL_STATUSES, Api
from tests.e2e.harness import queue_depth
from tests.e2e.test_notifications import wait_for
from tests.e2e.test_partial_shipments import ship_part, split_order, wait_for_stock

# The version deployed before event versions existed: the last commit before the warehouses
# work changed any event. The upgrade starts from it.
BASE_COMMIT = "a42be7bb1423a1c7efd94061a71a3d1d830f3dd2"
STAFF = stack.Staff("upgrade-staff", "upgrade-staff-password-93", "upgrade-staff@example.test")
STOCK = 30  # units of each product
UPGRADE_ORDER = ("inventory", "orders", "user-notification")
ORDERS_BETWEEN_STEPS = 8


@pytest.fixture(scope="module")
def base_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The services and libraries as they were at ``BASE_COMMIT``, from this repository."""
    root = tmp_path_factory.mktemp("base")
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", BASE_COMMIT, "services", "libs"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    return root


class OrderFlow(threading.Thread):
    """Customers placing orders one after another, as a shop's traffic does: an order the
    orders service could not take (it is being replaced) is sent again with the same
    Idempotency-Key until it is accepted, so it is placed exactly once."""

    def __init__(self, customers: list[Api], product_ids: list[int]) -> None:
        super().__init__(daemon=True)
        self.customers, self.product_ids = customers, product_ids
        self.placed: list[tuple[Api, str]] = []
        self.retried = 0
        self.failure: str | None = None
        self._stop_event = threading.Event()
        self._rng = random.Random(7)

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                self._place_one()
                time.sleep(0.05)
        except Exception as exc:  # reported by the test, which checks ``failure``
            self.failure = f"{type(exc).__name__}: {exc}"

    def _place_one(self) -> None:
        customer = self._rng.choice(self.customers)
        picked = self._rng.sample(self.product_ids, self._rng.choice([1, 2]))
        lines = [{"product_id": pid, "quantity": self._rng.choice([1, 2])} for pid in picked]
        key = str(uuid.uuid4())
        deadline = time.monotonic() + 90
        while True:
            try:
                response = customer.place_order(lines, key=key)
            except requests.ConnectionError:
                response = None
            if response is not None and response.status_code in (201, 202):
                self.placed.append((customer, str(response.json()["id"])))
                return
            if response is not None and response.status_code < 500:
                raise AssertionError(f"order refused: {response.status_code} {response.text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no service took the order with key {key} in 90s")
            self.retried += 1
            time.sleep(0.2)

    def wait_for_more(self, count: int, timeout: float = 60.0) -> None:
        target = len(self.placed) + count
        wait_for(lambda: len(self.placed) >= target or self.failure is not None, "orders", timeout)
        assert self.failure is None, self.failure

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=120)


@pytest.fixture
def old_system(base_tree: Path, tmp_path: Path) -> Iterator[stack.Stack]:
    spec = stack.StackSpec(
        run_id=stack.new_run_id("upgrade"),
        work_dir=tmp_path,
        staff=STAFF,
        retry_delays_ms=(200, 500),
        # Until told otherwise, producers publish what the previous release's consumers read.
        env={"ORDER_PENDING_DEADLINE_SECONDS": "900", "MESSAGING_EVENT_VERSIONS": ""},
        sources={service.name: base_tree for service in SERVICES},
    )
    with stack.running(spec) as running:
        yield running


def dead_letters(prefix: str) -> dict[str, int]:
    names = Names(prefix)
    return {s.name: queue_depth(names.dead_letter_queue(s.name)) for s in SERVICES}


def published_versions(
    running: stack.Stack, service: str, told_at: datetime, latest_from: datetime
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(type, version) of the events the service wrote before producers were told to publish
    the newest versions, and of those it wrote once it ran with that setting."""
    with psycopg.connect(running.database_urls[service]) as conn:
        rows = conn.execute("SELECT created_at, body FROM messaging_outboxmessage").fetchall()
    events = [(at, json.loads(body)) for at, body in rows]
    return (
        [(e["type"], e["version"]) for at, e in events if at < told_at],
        [(e["type"], e["version"]) for at, e in events if at > latest_from],
    )


def unannounced(customer: Api, order_ids: set[str]) -> set[str]:
    """The orders whose outcome the customer has not been told about."""
    outcomes = {"order_confirmed", "order_rejected"}
    told: set[str] = set()
    url: str | None = f"{customer.users}/api/notifications/?page_size=200"
    while url:
        response = customer.get(url)
        assert response.status_code == 200, response.text
        page = response.json()
        told |= {n["order_id"] for n in page["results"] if n["kind"] in outcomes}
        url = page["next"]
    return order_ids - told


def test_services_upgrade_one_at_a_time_while_orders_flow(old_system: stack.Stack) -> None:
    system = old_system.system
    assert all(
        p.cwd.is_relative_to(old_system.spec.sources["orders"])
        for p in system.processes
        if p.service in SERVICES
    )
    anonymous = Api(system.url("inventory"), system.url("orders"), system.url("user-notification"))
    staff = anonymous.as_user(STAFF.username, STAFF.password)
    products = [staff.create_product(stock=STOCK) for _ in range(3)]
    customers = [anonymous.register() for _ in range(3)]
    for product in products:  # the orders service knows every product before the flow
        first = customers[0].place_order([{"product_id": product["id"], "quantity": 1}])
        assert first.status_code == 202, first.text
        customers[0].wait_for_status(first.json()["id"], FINAL_STATUSES)

    flow = OrderFlow(customers, [p["id"] for p in products])
    flow.start()
    try:
        flow.wait_for_more(ORDERS_BETWEEN_STEPS)
        for name in UPGRADE_ORDER:
            system.upgrade(name)  # to this checkout
            flow.wait_for_more(ORDERS_BETWEEN_STEPS)
        # Every service runs this release: tell the producers, one restart at a time.
        told_at = datetime.now(UTC)
        system.env = {**system.env, VERSIONS_ENV: ONE_RELEASE_VERSIONS}
        latest_from: dict[str, datetime] = {}
        for name in UPGRADE_ORDER:
            system.upgrade(name)
            latest_from[name] = datetime.now(UTC)
            flow.wait_for_more(ORDERS_BETWEEN_STEPS // 2)
        anonymous.register()  # user-notification publishes too
    finally:
        flow.stop()
    assert flow.failure is None, flow.failure
    assert not system.sources, "every service runs this checkout's version"

    outcomes: dict[str, dict] = {}
    for customer, order_id in flow.placed:
        outcomes[order_id] = customer.wait_for_status(order_id, FINAL_STATUSES, timeout=60)
    assert len(outcomes) == len(flow.placed) >= ORDERS_BETWEEN_STEPS * (len(UPGRADE_ORDER) + 1)
    confirmed = [o for o in outcomes.values() if o["status"] == "CONFIRMED"]
    assert confirmed, "some orders were confirmed across the upgrade"

    # Nothing oversold: what each product holds is exactly what the confirmed orders took.
    for product in products:
        taken = 1 + sum(  # the first order of each product, placed before the flow
            line["quantity"]
            for o in confirmed
            for line in o["lines"]
            if line["product_id"] == product["id"]
        )
        counters = staff.product(product["id"])
        assert counters["on_hand"] == STOCK
        assert counters["reserved"] == taken <= STOCK, (product["id"], counters)
    reconcile = old_system.manage("inventory", "reconcile_stock")
    assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr

    # Every customer heard about every order of theirs, whichever version told them.
    for customer in customers:
        mine = {order_id for c, order_id in flow.placed if c is customer}
        missing = unannounced(customer, mine)
        deadline = time.monotonic() + 30
        while missing and time.monotonic() < deadline:
            time.sleep(0.2)
            missing = unannounced(customer, mine)
        assert not missing, {order_id: outcomes[order_id]["status"] for order_id in missing}
    assert dead_letters(old_system.prefix) == {s.name: 0 for s in SERVICES}

    # What each service published: the previous release's versions until told, then the newest.
    for name in UPGRADE_ORDER:
        before, after = published_versions(old_system, name, told_at, latest_from[name])
        assert before and all(v == versions.version_to_publish(t, {}) for t, v in before), name
        assert after and all(v == schemas.current_version(t) for t, v in after), name

    ships_in_parts_after_the_switch(staff, customers[0])
    confirmed_before = [o for o in confirmed if not o["allocations"]]
    assert confirmed_before, "some orders were confirmed by inventory's v1 stock.reserved"
    ships_whole_without_a_known_allocation(staff, confirmed_before[0])
    reconcile = old_system.manage("inventory", "reconcile_stock")
    assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
    assert dead_letters(old_system.prefix) == {s.name: 0 for s in SERVICES}


def ships_in_parts_after_the_switch(staff: Api, customer: Api) -> None:
    """stock.reserved v2 tells orders where the units are; order.shipped v2 ships each part
    from its warehouse: an order split over two warehouses made after the upgrade."""
    product_id, first, second, order_id = split_order(staff, customer)
    held = sorted((a["warehouse"], a["quantity"]) for a in customer.order(order_id)["allocations"])
    assert held == sorted([(first, 3), (second, 2)])

    ship_part(staff, order_id, first, product_id, 3)
    assert customer.order(order_id)["status"] == "PARTIALLY_SHIPPED"
    wait_for_stock(staff, product_id, {first: (0, 0), second: (2, 2)})
    ship_part(staff, order_id, second, product_id, 2)

    assert customer.order(order_id)["status"] == "SHIPPED"
    wait_for_stock(staff, product_id, {first: (0, 0), second: (0, 0)})


def ships_whole_without_a_known_allocation(staff: Api, order: dict) -> None:
    """An order confirmed before the switch (orders does not know where its units are): a
    partial shipment is refused, /ship/ ships it whole and inventory gives every unit out."""
    order_id = order["id"]
    line = order["lines"][0]
    refused = staff.post(
        f"{staff.orders}/api/orders/{order_id}/shipments/",
        {"warehouse": "default", "lines": [{"product_id": line["product_id"], "quantity": 1}]},
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "allocation_unknown", refused.text
    before = {item["product_id"]: staff.product(item["product_id"]) for item in order["lines"]}

    shipped = staff.post(f"{staff.orders}/api/orders/{order_id}/ship/")

    assert shipped.status_code == 200, shipped.text
    assert staff.order(order_id)["status"] == "SHIPPED"
    for item in order["lines"]:
        was = before[item["product_id"]]
        staff.wait_for_product(
            item["product_id"],
            on_hand=was["on_hand"] - item["quantity"],
            reserved=was["reserved"] - item["quantity"],
        )
