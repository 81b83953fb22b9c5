"""The order saga across the three services, over real processes, RabbitMQ and PostgreSQL."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pika
import psycopg

from messaging.envelope import Envelope
from messaging.topology import Names
from tests.e2e.client import FINAL_STATUSES, Api
from tests.e2e.conftest import E2E
from tests.e2e.harness import BROKER_URL, queue_depth


def _publish_raw(e2e: E2E, exchange: str, routing_key: str, body: bytes) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_publish(
        exchange, routing_key, body, pika.BasicProperties(delivery_mode=2), mandatory=True
    )
    connection.close()


class TestPlaceOrder:
    def test_an_order_within_stock_is_confirmed_and_stock_is_held(
        self, staff: Api, customer: Api
    ) -> None:
        product = staff.create_product(price="12.50", stock=5)
        response = customer.place_order([{"product_id": product["id"], "quantity": 2}])
        assert response.status_code == 202, response.text
        placed = response.json()
        assert placed["status"] == "PENDING"
        assert placed["total"] == "25.00"

        order = customer.wait_for_status(placed["id"], FINAL_STATUSES)
        assert order["status"] == "CONFIRMED"
        staff.wait_for_product(product["id"], on_hand=5, reserved=2, available=3)

    def test_an_order_beyond_stock_is_rejected_with_the_reason(
        self, staff: Api, customer: Api
    ) -> None:
        product = staff.create_product(stock=1)
        placed = customer.place_order([{"product_id": product["id"], "quantity": 3}]).json()
        order = customer.wait_for_status(placed["id"], FINAL_STATUSES)
        assert order["status"] == "REJECTED"
        reason = str(order.get("reason") or order.get("rejection_reason") or "")
        assert reason, order
        assert staff.product(product["id"])["reserved"] == 0

    def test_the_same_idempotency_key_twice_makes_one_order(
        self, staff: Api, customer: Api
    ) -> None:
        product = staff.create_product(stock=5)
        key = str(uuid.uuid4())
        first = customer.place_order([{"product_id": product["id"], "quantity": 1}], key=key)
        second = customer.place_order([{"product_id": product["id"], "quantity": 1}], key=key)
        assert first.status_code == 202
        assert second.status_code in (200, 202)
        assert first.json()["id"] == second.json()["id"]
        customer.wait_for_status(first.json()["id"], {"CONFIRMED"})
        listing = customer.get(f"{customer.orders}/api/orders/").json()
        assert [o["id"] for o in listing["results"]] == [first.json()["id"]]
        staff.wait_for_product(product["id"], reserved=1)


class TestCancelAndShip:
    def test_cancelling_a_confirmed_order_gives_the_stock_back(
        self, staff: Api, customer: Api
    ) -> None:
        product = staff.create_product(stock=4)
        placed = customer.place_order([{"product_id": product["id"], "quantity": 3}]).json()
        customer.wait_for_status(placed["id"], {"CONFIRMED"})
        staff.wait_for_product(product["id"], reserved=3)

        response = customer.post(f"{customer.orders}/api/orders/{placed['id']}/cancel/")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "CANCELLED"
        staff.wait_for_product(product["id"], on_hand=4, reserved=0, available=4)

    def test_shipping_turns_the_reservation_into_a_shipment(
        self, staff: Api, customer: Api
    ) -> None:
        product = staff.create_product(stock=4)
        placed = customer.place_order([{"product_id": product["id"], "quantity": 3}]).json()
        customer.wait_for_status(placed["id"], {"CONFIRMED"})
        assert (
            customer.post(f"{customer.orders}/api/orders/{placed['id']}/ship/").status_code == 403
        )

        response = staff.post(f"{staff.orders}/api/orders/{placed['id']}/ship/")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "SHIPPED"
        staff.wait_for_product(product["id"], on_hand=1, reserved=0, available=1)

    def test_a_customer_cannot_see_or_cancel_another_customers_order(
        self, e2e: E2E, staff: Api, customer: Api
    ) -> None:
        product = staff.create_product(stock=2)
        placed = customer.place_order([{"product_id": product["id"], "quantity": 1}]).json()
        other = e2e.anonymous.register()
        assert other.get(f"{other.orders}/api/orders/{placed['id']}/").status_code == 404
        cancel = other.post(f"{other.orders}/api/orders/{placed['id']}/cancel/")
        assert cancel.status_code == 404
        assert other.get(f"{other.orders}/api/orders/").json()["results"] == []
        assert e2e.anonymous.get(f"{other.orders}/api/orders/").status_code == 401
        assert customer.wait_for_status(placed["id"], FINAL_STATUSES)["status"] == "CONFIRMED"


class TestConcurrency:
    def test_two_hundred_concurrent_orders_for_ten_units_confirm_exactly_ten(
        self, e2e: E2E, staff: Api
    ) -> None:
        product = staff.create_product(stock=10)
        customers = [e2e.anonymous.register() for _ in range(20)]
        first = customers[0].place_order([{"product_id": product["id"], "quantity": 1}])
        assert first.status_code == 202, first.text  # the orders service now knows the product

        def place(index: int) -> str:
            buyer = customers[index % len(customers)]
            response = buyer.place_order([{"product_id": product["id"], "quantity": 1}])
            assert response.status_code == 202, response.text
            return str(response.json()["id"])

        with ThreadPoolExecutor(max_workers=20) as pool:
            order_ids = list(pool.map(place, range(199)))
        order_ids.append(first.json()["id"])

        statuses = [
            staff.wait_for_status(oid, FINAL_STATUSES, timeout=60)["status"] for oid in order_ids
        ]
        assert len(set(order_ids)) == 200
        assert statuses.count("CONFIRMED") == 10
        assert statuses.count("REJECTED") == 190
        staff.wait_for_product(product["id"], on_hand=10, reserved=10, available=0)


class TestDeliveryGuarantees:
    def test_a_message_delivered_twice_has_one_effect(
        self, e2e: E2E, staff: Api, customer: Api
    ) -> None:
        product = staff.create_product(stock=10)
        placed = customer.place_order([{"product_id": product["id"], "quantity": 2}]).json()
        customer.wait_for_status(placed["id"], {"CONFIRMED"})
        staff.wait_for_product(product["id"], reserved=2)

        with psycopg.connect(e2e.database_urls["orders"]) as conn:
            row = conn.execute(
                "SELECT exchange, body FROM messaging_outboxmessage "
                "WHERE routing_key = 'order.created' AND correlation_id = %s",
                [placed["id"]],
            ).fetchone()
        assert row is not None
        for _ in range(3):
            _publish_raw(e2e, row[0], "order.created", row[1].encode())
        # A later order on the same queue proves the duplicates were consumed before it.
        marker = customer.place_order([{"product_id": product["id"], "quantity": 1}]).json()
        customer.wait_for_status(marker["id"], {"CONFIRMED"})
        staff.wait_for_product(product["id"], reserved=3, on_hand=10)
        with psycopg.connect(e2e.database_urls["inventory"]) as conn:
            applied = conn.execute(
                "SELECT count(*) FROM messaging_inboxmessage WHERE message_id = %s",
                [json.loads(row[1])["id"]],
            ).fetchone()
        assert applied == (1,)

    def test_a_malformed_message_is_dead_lettered_and_the_consumer_keeps_working(
        self, e2e: E2E, staff: Api, customer: Api
    ) -> None:
        names = Names(e2e.prefix)
        dlq = names.dead_letter_queue("inventory")
        before = queue_depth(dlq)
        exchange = names.exchange("orders")
        _publish_raw(e2e, exchange, "order.created", b"{not json")
        bad_schema = (
            Envelope.new(
                "order.created",
                {
                    "order_id": str(uuid.uuid4()),
                    "user_id": 1,
                    "lines": [{"product_id": 1, "quantity": 1}],
                },
                source="orders",
                correlation_id="poison",
            )
            .to_json()
            .replace('"quantity":1', '"quantity":-5')
        )
        _publish_raw(e2e, exchange, "order.created", bad_schema.encode())

        product = staff.create_product(stock=3)
        placed = customer.place_order([{"product_id": product["id"], "quantity": 1}]).json()
        assert customer.wait_for_status(placed["id"], FINAL_STATUSES)["status"] == "CONFIRMED"
        deadline = time.monotonic() + 10
        while queue_depth(dlq) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert queue_depth(dlq) == before + 2


class TestInventoryDown:
    def test_orders_wait_while_inventory_consumer_is_stopped_then_confirm(
        self, e2e: E2E, staff: Api, customer: Api
    ) -> None:
        product = staff.create_product(stock=5)
        customer.place_order([{"product_id": product["id"], "quantity": 1}])  # replica ready
        workers = e2e.system.workers_of("inventory")  # the consumers run in them
        for worker in workers:
            worker.stop()
        try:
            placed = customer.place_order([{"product_id": product["id"], "quantity": 2}]).json()
            time.sleep(3)
            assert customer.order(placed["id"])["status"] == "PENDING"
        finally:
            for worker in workers:
                worker.start()
        order = customer.wait_for_status(placed["id"], FINAL_STATUSES, timeout=30)
        assert order["status"] == "CONFIRMED"
        staff.wait_for_product(product["id"], reserved=3)


def test_each_writer_marks_its_events_sent_itself_within_the_relays_grace(
    e2e: E2E, staff: Api, customer: Api
) -> None:
    """The web worker (its order.created), inventory's consumer (stock.reserved) and the orders
    consumer (order.confirmed) mark what they published after their commit: left to a later
    statement, or written alone once they idle, but well before the relay's one-second grace
    would let the relay publish them again. An order alone on an idle system is the case where
    no later statement comes."""
    product = staff.create_product(stock=5)
    placed = customer.place_order([{"product_id": product["id"], "quantity": 1}]).json()
    customer.wait_for_status(placed["id"], {"CONFIRMED"})
    waits = {"orders": ["order.created", "order.confirmed"], "inventory": ["stock.reserved"]}
    deadline = time.monotonic() + 10
    found: dict[str, list[tuple[str, float | None]]] = {}
    while time.monotonic() < deadline:
        for service, which in waits.items():
            with psycopg.connect(e2e.database_urls[service]) as conn:
                found[service] = conn.execute(
                    "SELECT routing_key, EXTRACT(EPOCH FROM sent_at - created_at)::float "
                    "FROM messaging_outboxmessage WHERE correlation_id = %s "
                    "AND routing_key = ANY(%s)",
                    [placed["id"], which],
                ).fetchall()
        if all(row[1] is not None for rows in found.values() for row in rows):
            break
        time.sleep(0.05)
    rows = sorted(row for rows in found.values() for row in rows)
    assert [row[0] for row in rows] == ["order.confirmed", "order.created", "stock.reserved"]
    for routing_key, seconds in rows:
        assert seconds is not None, f"{routing_key} never marked sent"
        # The relay takes only rows unsent for a second: these were marked by their writer.
        assert seconds < 0.9, f"{routing_key} marked {seconds:.3f} s after it was written"
