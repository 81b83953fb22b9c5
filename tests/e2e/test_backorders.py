"""Backorders end to end: orders placed through the orders service wait in inventory, and an
inventory worker killed (``kill -9``) in the middle of a pass serving them serves each exactly
once after its restart."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import requests

from devstack.system import service_spec
from messaging import crash_points
from tests.e2e.client import Api
from tests.e2e.conftest import E2E

MARKER = f"crash point {crash_points.BACKORDER_MID_SERVE} reached"


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def query(e2e: E2E, sql: str, *params: object) -> list[tuple]:
    with psycopg.connect(e2e.database_urls["inventory"]) as conn:
        return conn.execute(sql, params).fetchall()


def statuses(e2e: E2E, order_ids: list[str]) -> list[str]:
    rows = query(
        e2e,
        "SELECT order_id::text, status FROM stock_reservation WHERE order_id::text = ANY(%s)",
        order_ids,
    )
    found = dict(rows)
    return [found.get(order_id, "") for order_id in order_ids]


def reserved_units(e2e: E2E, order_ids: list[str]) -> dict[str, tuple[int, int]]:
    """Per order: its reserve ledger entries, and the units they reserved."""
    rows = query(
        e2e,
        "SELECT order_id::text, count(*), sum(delta_reserved) FROM stock_stockledgerentry"
        " WHERE kind = 'reserve' AND order_id::text = ANY(%s) GROUP BY order_id",
        order_ids,
    )
    return {order_id: (int(n), int(units)) for order_id, n, units in rows}


def reserved_events(e2e: E2E, order_ids: list[str]) -> dict[str, int]:
    rows = query(
        e2e,
        "SELECT correlation_id, count(*) FROM messaging_outboxmessage"
        " WHERE routing_key = 'stock.reserved' AND correlation_id = ANY(%s)"
        " GROUP BY correlation_id",
        order_ids,
    )
    return {order_id: int(n) for order_id, n in rows}


def test_a_worker_killed_mid_pass_serves_each_waiting_order_exactly_once(
    e2e: E2E, staff: Api, customer: Api
) -> None:
    inventory = staff.inventory
    code = f"late-{uuid.uuid4().hex[:8]}"
    created = staff.post(
        f"{inventory}/api/warehouses/", {"code": code, "name": "Late", "active": False}
    )
    assert created.status_code == 201, created.text
    warehouse_id = created.json()["id"]
    product = staff.create_product(allow_backorder=True)
    assert product["allow_backorder"] is True
    order_ids = []
    for _ in range(3):
        response = customer.place_order([{"product_id": product["id"], "quantity": 1}])
        assert response.status_code == 202, response.text
        order_ids.append(str(response.json()["id"]))
    wait_until(
        lambda: statuses(e2e, order_ids) == ["BACKORDERED"] * 3, 30, "the orders to backorder"
    )
    # Units delivered where they cannot be sold yet: the waiting orders take none of them.
    delivered = staff.post(
        f"{inventory}/api/products/{product['id']}/stock-adjustments/",
        {"delta": 3, "reason": "delivered early", "warehouse": code},
    )
    assert delivered.status_code == 201, delivered.text
    assert statuses(e2e, order_ids) == ["BACKORDERED"] * 3

    workers = e2e.system.workers_of("inventory")
    for worker in workers:
        worker.stop()
    opened = requests.patch(
        f"{inventory}/api/warehouses/{warehouse_id}/",
        json={"active": True},
        headers={"Authorization": f"Bearer {staff.token}"},
        timeout=10,
    )
    assert opened.status_code == 200, opened.text
    # The orders have waited past the priority bound: the worker's backorder job serves them
    # (each takes what it can) as soon as it starts.
    query(
        e2e,
        "UPDATE stock_reservation SET created_at = now() - interval '2 days'"
        " WHERE order_id::text = ANY(%s) RETURNING id",
        order_ids,
    )

    first = workers[0]
    assert first.log is not None
    log, offset = Path(first.log.name), Path(first.log.name).stat().st_size
    original = first.env
    first.env = {**original, crash_points.ENV: crash_points.BACKORDER_MID_SERVE}
    try:
        first.start()
        wait_until(lambda: not first.running(), 60, "the worker to kill itself mid-pass")
    finally:
        first.env = original
    assert first.process is not None and first.process.returncode == -9
    assert MARKER in log.read_text()[offset:]
    # The pass died after serving one order, before its commit: nothing of it is left.
    assert statuses(e2e, order_ids) == ["BACKORDERED"] * 3
    assert reserved_units(e2e, order_ids) == {}

    for worker in workers:
        worker.start()
    wait_until(lambda: statuses(e2e, order_ids) == ["RESERVED"] * 3, 60, "the pass to serve")

    assert reserved_units(e2e, order_ids) == {order_id: (1, 1) for order_id in order_ids}
    assert reserved_events(e2e, order_ids) == {order_id: 1 for order_id in order_ids}
    assert query(
        e2e,
        "SELECT count(*) FROM stock_backorder b JOIN stock_reservation r"
        " ON r.id = b.reservation_id WHERE r.order_id::text = ANY(%s)",
        order_ids,
    ) == [(0,)]
    stock = staff.get(f"{inventory}/api/products/{product['id']}/").json()
    assert (stock["on_hand"], stock["reserved"], stock["backordered"]) == (3, 3, 0)
    reconcile = e2e.system.manage(service_spec("inventory"), "reconcile_stock")
    assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
