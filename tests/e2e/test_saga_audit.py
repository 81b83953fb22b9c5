"""The cross-service audit (``python -m saga_audit``) on the real local system: clean, it finds
no drift and exits 0; each kind of drift, written straight into one service's database, is
reported and makes it exit 1. Every injection is undone, so the system stays clean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.e2e.client import Api
from tests.e2e.conftest import E2E
from tests.e2e.harness import STAFF_PASSWORD, STAFF_USERNAME

GRACE_SECONDS = 1.0


@dataclass(frozen=True)
class Saga:
    confirmed: str
    shipped: str
    backordered: str


def audit(e2e: E2E) -> subprocess.CompletedProcess[str]:
    system = e2e.system
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "saga_audit",
            "--orders-url",
            system.url("orders"),
            "--inventory-url",
            system.url("inventory"),
            "--users-url",
            system.url("user-notification"),
            "--username",
            STAFF_USERNAME,
            "--password",
            STAFF_PASSWORD,
            "--grace",
            str(GRACE_SECONDS),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def reservation(staff: Api, order_id: str) -> dict:
    response = staff.get(f"{staff.inventory}/api/reservations/", order_id=order_id)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    return dict(results[0]) if results else {}


def wait_for_reservation(staff: Api, order_id: str, status: str) -> None:
    deadline = time.monotonic() + 30
    while reservation(staff, order_id).get("status") != status:
        assert time.monotonic() < deadline, f"reservation of {order_id} never {status}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def saga(e2e: E2E) -> Saga:
    staff, customer = e2e.staff, e2e.anonymous.register()
    product = int(staff.create_product(price="3.00", stock=20)["id"])
    waiting = int(staff.create_product(price="5.00", allow_backorder=True)["id"])

    def placed(lines: list[dict[str, int]], status: str) -> str:
        response = customer.place_order(lines)
        assert response.status_code == 202, response.text
        order_id = str(response.json()["id"])
        customer.wait_for_status(order_id, {status})
        return order_id

    confirmed = placed([{"product_id": product, "quantity": 2}], "CONFIRMED")
    shipped = placed([{"product_id": product, "quantity": 3}], "CONFIRMED")
    assert staff.post(f"{staff.orders}/api/orders/{shipped}/ship/").status_code == 200
    backordered = placed([{"product_id": waiting, "quantity": 1}], "BACKORDERED")
    wait_for_reservation(staff, confirmed, "RESERVED")
    wait_for_reservation(staff, shipped, "SHIPPED")
    wait_for_reservation(staff, backordered, "BACKORDERED")
    time.sleep(GRACE_SECONDS + 0.5)  # everything settled is now older than the grace
    return Saga(confirmed, shipped, backordered)


@contextmanager
def changed(e2e: E2E, service: str, table: str, of: str, **values: object) -> Iterator[None]:
    """Set ``values`` on the row of order ``of`` in ``service``'s ``table``, then put the row
    back as it was (``updated_at`` untouched: the change is not in flight)."""
    order_id = of
    key = "id" if table == "orders_order" else "order_id"
    columns = ", ".join(values)
    with psycopg.connect(e2e.database_urls[service], autocommit=True) as conn:
        row = conn.execute(
            f"SELECT {columns} FROM {table} WHERE {key} = %s",  # noqa: S608
            [order_id],
        ).fetchone()
        assert row is not None, f"no {table} row for {order_id}"
        before = dict(zip(values, row, strict=True))
        _update(conn, table, key, order_id, values)
        try:
            yield
        finally:
            restored = {**before}
            if "order_id" in values:  # the row is now found by its new order id
                order_id = str(values["order_id"])
            _update(conn, table, key, order_id, restored)


def _update(
    conn: psycopg.Connection, table: str, key: str, order_id: str, values: dict[str, object]
) -> None:
    assignments = ", ".join(f"{column} = %s" for column in values)
    params = [json.dumps(v) if isinstance(v, list | dict) else v for v in values.values()]
    conn.execute(
        f"UPDATE {table} SET {assignments} WHERE {key} = %s",  # noqa: S608
        [*params, order_id],
    )


ORDERS_DIR = Path(__file__).resolve().parents[2] / "services" / "orders"
# The orders worker's audit job, run once as the worker would, its metric printed.
JOB_ONCE = """
import django
django.setup()
from prometheus_client import REGISTRY
from saga_audit.job import SagaAuditJob
job = SagaAuditJob(interval=1)
job.audit_once()
assert job.healthy_at > float("-inf"), "every answer keeps the job healthy"
for kind in ("held_for_final_order", "lines_mismatch"):
    print(kind, REGISTRY.get_sample_value("saga_audit_drift", {"kind": kind}))
"""


def audit_job_drift(e2e: E2E) -> dict[str, float]:
    """``saga_audit_drift`` by kind after one run of the orders worker's audit job."""
    system = e2e.system
    env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        SAGA_AUDIT_USERNAME=STAFF_USERNAME,
        SAGA_AUDIT_PASSWORD=STAFF_PASSWORD,
        SAGA_AUDIT_GRACE_SECONDS=str(int(GRACE_SECONDS)),
        SAGA_AUDIT_ORDERS_URL=system.url("orders"),
        SAGA_AUDIT_INVENTORY_URL=system.url("inventory"),
        SAGA_AUDIT_USERS_URL=system.url("user-notification"),
    )
    result = subprocess.run(
        [sys.executable, "-c", JOB_ONCE],
        cwd=ORDERS_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return {
        kind: float(value) for kind, value in (line.split() for line in result.stdout.splitlines())
    }


def drift_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("DRIFT ")]


def assert_reported(e2e: E2E, *expected: str) -> list[str]:
    result = audit(e2e)
    lines = drift_lines(result)
    assert result.returncode == 1, (result.stdout, result.stderr)
    for fragment in expected:
        assert any(fragment in line for line in lines), (fragment, lines)
    return lines


def test_a_clean_system_has_no_drift(e2e: E2E, saga: Saga) -> None:
    result = audit(e2e)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert drift_lines(result) == []
    assert "0 drift(s)" in result.stdout
    assert audit_job_drift(e2e) == {"held_for_final_order": 0.0, "lines_mismatch": 0.0}


def test_a_confirmed_order_whose_reservation_holds_other_lines(e2e: E2E, saga: Saga) -> None:
    held = reservation(e2e.staff, saga.confirmed)
    lines = [{**line, "quantity": line["quantity"] + 1} for line in held["lines"]]
    with changed(e2e, "inventory", "stock_reservation", saga.confirmed, lines=lines):
        drift = assert_reported(e2e, f"DRIFT lines_mismatch order {saga.confirmed}")
    assert len(drift) == 1, drift
    assert audit(e2e).returncode == 0


def test_a_confirmed_order_without_reservation(e2e: E2E, saga: Saga) -> None:
    stranger = str(uuid.uuid4())
    with changed(e2e, "inventory", "stock_reservation", saga.confirmed, order_id=stranger):
        assert_reported(
            e2e,
            f"DRIFT missing_reservation order {saga.confirmed}",
            f"DRIFT reservation_without_order order {stranger}",
        )
    assert audit(e2e).returncode == 0


def test_an_active_reservation_of_a_cancelled_order(e2e: E2E, saga: Saga) -> None:
    for final in ("CANCELLED", "REJECTED"):
        with changed(e2e, "orders", "orders_order", saga.confirmed, status=final):
            drift = assert_reported(e2e, f"DRIFT held_for_final_order order {saga.confirmed}")
            if final == "CANCELLED":  # the periodic job counts it in its metric
                found = audit_job_drift(e2e)
                assert found == {"held_for_final_order": 1.0, "lines_mismatch": 0.0}
        assert final in " ".join(drift)
    assert audit(e2e).returncode == 0


def test_a_shipped_order_whose_units_never_left_stock(e2e: E2E, saga: Saga) -> None:
    held = reservation(e2e.staff, saga.shipped)
    allocations = [{**entry, "shipped": 0} for entry in held["allocations"]]
    with changed(
        e2e,
        "inventory",
        "stock_reservation",
        saga.shipped,
        allocations=allocations,
        status="RESERVED",
    ):
        assert_reported(
            e2e,
            f"DRIFT shipped_mismatch order {saga.shipped}",
            f"DRIFT status_mismatch order {saga.shipped}: SHIPPED order, reservation RESERVED",
        )
    assert audit(e2e).returncode == 0


def test_a_backordered_order_whose_reservation_is_not(e2e: E2E, saga: Saga) -> None:
    with changed(e2e, "inventory", "stock_reservation", saga.backordered, status="RELEASED"):
        assert_reported(
            e2e,
            f"DRIFT status_mismatch order {saga.backordered}: BACKORDERED order, "
            "reservation RELEASED",
        )
    with changed(e2e, "orders", "orders_order", saga.backordered, status="CONFIRMED"):
        assert_reported(
            e2e,
            f"DRIFT status_mismatch order {saga.backordered}: CONFIRMED order, "
            "reservation BACKORDERED",
        )
    assert audit(e2e).returncode == 0


def test_the_audit_says_when_it_cannot_read_a_service(e2e: E2E) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "saga_audit",
            "--users-url",
            e2e.system.url("user-notification"),
            "--username",
            STAFF_USERNAME,
            "--password",
            "not-the-password",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "audit not possible" in result.stderr
