"""The per-service broker accounts of deploy/rabbitmq/definitions.json on a RabbitMQ node of
our own (its own ports and data; the shared broker is never touched): the orders account can
neither publish to inventory's exchanges nor write into or read inventory's queues, and the
whole saga (an order confirmed, a retry delivered, a poison message dead-lettered) runs with
each service on its own account.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pika
import psycopg
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError, ChannelClosedByBroker

from devstack import stack
from messaging import topology
from tests.chaos import infra
from tests.deploy.manifests import SERVICE_NAMES, load_generator
from tests.e2e.client import FINAL_STATUSES, Api

RETRY_DELAYS_MS = (300, 600)
ACCESS_REFUSED = 403
STAFF = stack.Staff("least-privilege-staff", "least-privilege-staff-pw-27", "staff@example.test")


class PrivateBroker:
    """A started node loaded with the definitions for ``prefix``; every account's URL."""

    def __init__(self, node: infra.RabbitNode, prefix: str) -> None:
        self.node = node
        self.names = topology.Names(prefix)

    def url(self, user: str) -> str:
        return f"amqp://{user}:{user}-local-only@127.0.0.1:{self.node.port}/%2F"

    def connect(self, user: str) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.URLParameters(self.url(user)))

    def depth(self, queue: str) -> int:
        connection = self.connect("admin")
        try:
            declared = connection.channel().queue_declare(queue, passive=True)
            return int(declared.method.message_count)
        finally:
            connection.close()

    def publish(self, exchange: str, routing_key: str, body: bytes) -> None:
        connection = self.connect("admin")
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_publish(
                exchange, routing_key, body, pika.BasicProperties(delivery_mode=2), mandatory=True
            )
        finally:
            connection.close()


def definitions_for(prefix: str) -> dict[str, Any]:
    """What generate_definitions.py writes for this prefix and these delays, with the local
    passwords; users, permissions, exchanges, bindings and queue arguments unchanged.

    The machine's RabbitMQ may be older than the Compose image: before 3.12 a policy cannot
    target 'quorum_queues', and a queue declared without ``x-queue-type`` (as the services do)
    does not match a quorum queue whatever the virtual host's default type; so the queues are
    classic here and the policies target every queue.
    """
    generated: dict[str, Any] = load_generator().definitions(
        prefix=prefix, retry_delays_ms=RETRY_DELAYS_MS, env={}
    )
    for policy in generated["policies"]:
        policy["apply-to"] = "queues"
    for queue in generated["queues"]:
        del queue["arguments"]["x-queue-type"]
    for vhost in generated["vhosts"]:
        vhost.pop("default_queue_type")
        vhost["metadata"].pop("default_queue_type")
    return generated


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    missing = [m for m in infra.missing_tools() if "rabbitmq" in m]
    if missing:
        pytest.skip(f"cannot start a private RabbitMQ node: {', '.join(missing)}")
    root = tmp_path_factory.mktemp("least-privilege")
    home = infra.erlang_home(root, f"LEASTPRIV{uuid.uuid4().hex.upper()}")
    node = infra.RabbitNode(root, f"leastpriv-{uuid.uuid4().hex[:6]}", home)
    prefix = stack.new_run_id("lp").replace("_", "-") + "."
    try:
        node.start()
        node.wait_ready()
        path = root / "definitions.json"
        path.write_text(json.dumps(definitions_for(prefix)))
        node.ctl("import_definitions", str(path))
        yield PrivateBroker(node, prefix)
    finally:
        node.stop()


def attempt(broker: PrivateBroker, user: str, action: Callable[[BlockingChannel], Any]) -> int:
    """Run ``action`` as ``user`` on a confirming channel: 0, or the broker's refusal code."""
    connection = broker.connect(user)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        action(channel)
        return 0
    except ChannelClosedByBroker as refusal:
        return int(refusal.reply_code)
    finally:
        with contextlib.suppress(AMQPError):
            connection.close()


def inventory_queues(names: topology.Names) -> list[str]:
    return [
        names.queue("inventory"),
        names.dead_letter_queue("inventory"),
        *(names.retry_queue("inventory", delay) for delay in RETRY_DELAYS_MS),
    ]


class TestTheOrdersAccount:
    def test_publishes_its_own_events(self, broker: PrivateBroker) -> None:
        exchange = broker.names.exchange("orders")
        assert attempt(broker, "orders", lambda c: c.basic_publish(exchange, "x", b"{}")) == 0

    def test_cannot_publish_to_inventory_events(self, broker: PrivateBroker) -> None:
        exchange = broker.names.exchange("inventory")
        publish = lambda c: c.basic_publish(exchange, "stock.reserved", b"{}")  # noqa: E731
        assert attempt(broker, "orders", publish) == ACCESS_REFUSED

    def test_cannot_write_into_inventorys_queues_through_any_exchange(
        self, broker: PrivateBroker
    ) -> None:
        names = broker.names
        before = {queue: broker.depth(queue) for queue in inventory_queues(names)}
        routes = [("", queue) for queue in inventory_queues(names)]  # the default exchange
        routes += [(names.retry_exchange("inventory"), q) for q in inventory_queues(names)]
        routes += [(names.dead_letter_exchange("inventory"), names.dead_letter_queue("inventory"))]
        for exchange, queue in routes:
            publish = lambda c: c.basic_publish(exchange, queue, b"{}")  # noqa: E731,B023
            assert attempt(broker, "orders", publish) == ACCESS_REFUSED, (exchange, queue)
        # Nor by binding one of its own exchanges to them (binding needs write on the queue).
        for own in (names.exchange("orders"), names.retry_exchange("orders")):
            for queue in inventory_queues(names):
                bind = lambda c: c.queue_bind(queue, own, "any")  # noqa: E731,B023
                assert attempt(broker, "orders", bind) == ACCESS_REFUSED, (own, queue)
        assert {queue: broker.depth(queue) for queue in inventory_queues(names)} == before

    def test_cannot_read_inventorys_queues(self, broker: PrivateBroker) -> None:
        for queue in inventory_queues(broker.names):
            get = lambda c: c.basic_get(queue, auto_ack=False)  # noqa: E731,B023
            assert attempt(broker, "orders", get) == ACCESS_REFUSED, queue
            consume = lambda c: c.basic_consume(queue, lambda *a: None)  # noqa: E731,B023
            assert attempt(broker, "orders", consume) == ACCESS_REFUSED, queue

    def test_no_account_writes_through_the_default_exchange(self, broker: PrivateBroker) -> None:
        for service in SERVICE_NAMES:
            own = broker.names.queue(service)
            publish = lambda c: c.basic_publish("", own, b"{}")  # noqa: E731,B023
            assert attempt(broker, service, publish) == ACCESS_REFUSED, service


def test_a_retry_queue_of_an_earlier_release_is_kept_and_still_works(
    broker: PrivateBroker,
) -> None:
    """Upgrading: a retry queue declared with the old arguments (dead-lettering through the
    default exchange) does not stop the consumer's declarations, and still hands back."""
    names = topology.Names(broker.names.prefix + "old.")
    old = names.retry_queue("inventory", RETRY_DELAYS_MS[0])
    admin = broker.connect("admin")
    try:
        channel = admin.channel()
        channel.queue_declare(names.queue("inventory"), durable=True)
        channel.queue_declare(
            old,
            durable=True,
            arguments={
                "x-message-ttl": 50,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": names.queue("inventory"),
            },
        )
        for service in topology.PUBLISHES:
            topology.declare_own_exchange(channel, names, service)
        channel = topology.declare_consumer_queues(channel, names, "inventory", RETRY_DELAYS_MS)
        channel.confirm_delivery()
        channel.basic_publish(names.retry_exchange("inventory"), old, b"{}", mandatory=True)
        deadline = time.monotonic() + 10
        while broker.depth(names.queue("inventory")) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert broker.depth(names.queue("inventory")) == 1
    finally:
        with contextlib.suppress(AMQPError):
            topology.delete_all(admin.channel(), names, RETRY_DELAYS_MS)
        admin.close()


@pytest.fixture(scope="module")
def system(
    broker: PrivateBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[stack.Stack]:
    prefix = broker.names.prefix
    spec = stack.StackSpec(
        run_id=prefix.rstrip(".").replace("-", "_"),
        work_dir=tmp_path_factory.mktemp("least-privilege-system"),
        staff=STAFF,
        broker_url=broker.url("admin"),  # only to clean up afterwards
        retry_delays_ms=RETRY_DELAYS_MS,
        service_env={s: {"AMQP_URL": broker.url(s)} for s in SERVICE_NAMES},
        web_workers=1,
        declare_broker_layout=False,  # loaded from the definitions, as in the containers
    )
    assert spec.prefix == prefix
    with stack.running(spec) as running:
        yield running


def fail_the_next_reservations(database_url: str, times: int) -> None:
    """Make inventory's next ``times`` reservation inserts fail (a sequence is not rolled
    back with the failed transaction), so the order.created behind them is retried."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE injected_failures")
        conn.execute(
            f"""
            CREATE FUNCTION fail_first_reservations() RETURNS trigger AS $$
            BEGIN
                IF nextval('injected_failures') <= {int(times)} THEN
                    RAISE EXCEPTION 'injected failure';
                END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql
            """
        )
        conn.execute(
            "CREATE TRIGGER fail_first_reservations BEFORE INSERT ON stock_reservation "
            "FOR EACH ROW EXECUTE FUNCTION fail_first_reservations()"
        )


def injected_failures(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT last_value FROM injected_failures").fetchone()
    assert row is not None
    return int(row[0])


def test_the_saga_runs_with_per_service_accounts(
    broker: PrivateBroker, system: stack.Stack
) -> None:
    anonymous = Api(system.url("inventory"), system.url("orders"), system.url("user-notification"))
    staff, customer = anonymous.as_user(STAFF.username, STAFF.password), anonymous.register()
    product = staff.create_product(price="4.00", stock=5)

    # A retry: inventory's first tries at the reservation fail, a retry succeeds.
    fail_the_next_reservations(system.database_urls["inventory"], times=2)
    placed = customer.place_order([{"product_id": product["id"], "quantity": 2}])
    assert placed.status_code == 202, placed.text
    order = customer.wait_for_status(placed.json()["id"], FINAL_STATUSES)
    assert order["status"] == "CONFIRMED"
    staff.wait_for_product(product["id"], on_hand=5, reserved=2)
    assert injected_failures(system.database_urls["inventory"]) >= 3  # two failed, one held
    worker_logs = "".join(
        path.read_text() for path in (system.work_dir / "logs").glob("inventory.*.log")
    )
    assert "handler for order.created failed (attempt 1)" in worker_logs

    # A poison message: inventory's consumer dead-letters it through its own exchange.
    dlq = broker.names.dead_letter_queue("inventory")
    before = broker.depth(dlq)
    broker.publish(broker.names.exchange("orders"), "order.created", b"{not json")
    deadline = time.monotonic() + 15
    while broker.depth(dlq) < before + 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert broker.depth(dlq) == before + 1

    # And the saga carries on.
    again = customer.place_order([{"product_id": product["id"], "quantity": 1}]).json()
    assert customer.wait_for_status(again["id"], FINAL_STATUSES)["status"] == "CONFIRMED"
