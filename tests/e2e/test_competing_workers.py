"""Two worker processes per service, side by side (the end-to-end system runs two of each):
competing consumers, relays, deadline and e-mail jobs, and still one effect per event."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pika
import psycopg

from devstack.system import SERVICES
from messaging.topology import Names
from tests.e2e.client import FINAL_STATUSES, Api
from tests.e2e.conftest import E2E
from tests.e2e.harness import BROKER_URL, WORKER_PROCESSES
from tests.e2e.test_notifications import kinds, wait_for


def e_mail_subjects(e2e: E2E) -> Counter[str]:
    """How many e-mails went out with each subject."""
    mail_dir = Path(e2e.system.env["EMAIL_FILE_PATH"])
    files = sorted(mail_dir.glob("*.log")) if mail_dir.is_dir() else []
    return Counter(
        line.removeprefix("Subject: ")
        for path in files
        for line in path.read_text().splitlines()
        if line.startswith("Subject: ")
    )


def told(api: Api, order_id: str, kind: str) -> bool:
    return kind in kinds(api, order_id)


def outbox_count(e2e: E2E, service: str, routing_key: str, order_ids: list[str]) -> Counter[str]:
    """How many events of ``routing_key`` the service wrote for each order."""
    with psycopg.connect(e2e.database_urls[service]) as conn:
        rows = conn.execute(
            "SELECT correlation_id FROM messaging_outboxmessage "
            "WHERE routing_key = %s AND correlation_id = ANY(%s)",
            [routing_key, order_ids],
        ).fetchall()
    return Counter(row[0] for row in rows)


def test_every_service_runs_its_workers_side_by_side_on_one_queue(e2e: E2E) -> None:
    names = Names(e2e.prefix)
    connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
    try:
        channel = connection.channel()
        for service in SERVICES:
            workers = e2e.system.workers_of(service.name)
            assert len(workers) == WORKER_PROCESSES, service.name
            assert all(worker.running() for worker in workers), service.name
            queue = channel.queue_declare(names.queue(service.name), passive=True)
            assert queue.method.consumer_count == WORKER_PROCESSES, service.name
    finally:
        connection.close()


def test_a_burst_of_orders_is_shared_out_and_each_has_one_effect(e2e: E2E, staff: Api) -> None:
    products = [staff.create_product(stock=15) for _ in range(3)]
    customers = [e2e.anonymous.register() for _ in range(10)]
    for product in products:  # the orders service knows every product before the burst
        first = customers[0].place_order([{"product_id": product["id"], "quantity": 1}])
        customers[0].wait_for_status(first.json()["id"], FINAL_STATUSES)

    def place(index: int) -> tuple[Api, str]:
        buyer = customers[index % len(customers)]
        product = products[index % len(products)]
        response = buyer.place_order([{"product_id": product["id"], "quantity": 1 + index % 2}])
        assert response.status_code == 202, response.text
        return buyer, str(response.json()["id"])

    with ThreadPoolExecutor(max_workers=10) as pool:
        placed = list(pool.map(place, range(60)))
    order_ids = [order_id for _, order_id in placed]
    final = {oid: staff.wait_for_status(oid, FINAL_STATUSES, timeout=60) for oid in order_ids}

    # No oversell: what is held is what the confirmed orders hold, never more than the stock.
    for product in products:
        held = 1 + sum(  # the first order of each product
            line["quantity"]
            for order in final.values()
            if order["status"] == "CONFIRMED"
            for line in order["lines"]
            if line["product_id"] == product["id"]
        )
        assert held <= 15
        staff.wait_for_product(product["id"], on_hand=15, reserved=held)
    assert e2e.system.manage(SERVICES[0], "reconcile_stock").returncode == 0

    # One outcome per order, in the app and by e-mail, however the workers shared the work.
    outcomes = {oid: order["status"].lower() for oid, order in final.items()}
    for buyer, order_id in placed:
        kind = f"order_{outcomes[order_id]}"
        wait_for(partial(told, buyer, order_id, kind), f"{order_id}: {kind}")
    wait_for(
        lambda: all(e_mail_subjects(e2e)[f"Order {o} {s}"] for o, s in outcomes.items()),
        "every outcome's e-mail",
    )
    time.sleep(1.0)  # a duplicate would have arrived by now
    for buyer, order_id in placed:
        assert kinds(buyer, order_id) == [f"order_{outcomes[order_id]}"]
    subjects = e_mail_subjects(e2e)
    assert {subjects[f"Order {o} {s}"] for o, s in outcomes.items()} == {1}
    for routing_key in ("order.confirmed", "order.rejected"):
        assert set(outbox_count(e2e, "orders", routing_key, order_ids).values()) <= {1}


def test_expired_orders_are_cancelled_once_by_the_deadline_jobs(
    e2e: E2E, staff: Api, customer: Api
) -> None:
    product = staff.create_product(stock=20)
    ready = customer.place_order([{"product_id": product["id"], "quantity": 1}]).json()
    customer.wait_for_status(ready["id"], {"CONFIRMED"})  # the orders service knows it
    inventory = e2e.system.workers_of("inventory")
    for worker in inventory:
        worker.stop()
    try:
        order_ids = [
            customer.place_order([{"product_id": product["id"], "quantity": 1}]).json()["id"]
            for _ in range(8)
        ]
        with psycopg.connect(e2e.database_urls["orders"]) as conn:
            conn.execute(
                "UPDATE orders_order SET deadline = now() - interval '1 minute' "
                "WHERE id = ANY(%s::uuid[]) AND status = 'PENDING'",
                [order_ids],
            )
        for order_id in order_ids:  # both orders workers scan every second
            assert customer.wait_for_status(order_id, {"CANCELLED"}, timeout=30)
    finally:
        for worker in inventory:
            worker.start()
    assert outbox_count(e2e, "orders", "order.cancelled", order_ids) == Counter(
        {order_id: 1 for order_id in order_ids}
    )
    # Inventory, back, reserves and releases each one: nothing stays held.
    staff.wait_for_product(product["id"], on_hand=20, reserved=1, timeout=30)
    for order_id in order_ids:
        wait_for(partial(told, customer, order_id, "order_cancelled"), f"{order_id} cancelled")
    wait_for(
        lambda: all(e_mail_subjects(e2e)[f"Order {o} cancelled"] for o in order_ids),
        "every cancellation's e-mail",
    )
    time.sleep(1.0)  # a duplicate would have arrived by now
    subjects = e_mail_subjects(e2e)
    assert [subjects[f"Order {o} cancelled"] for o in order_ids] == [1] * len(order_ids)
    assert all(kinds(customer, o).count("order_cancelled") == 1 for o in order_ids)
