"""Events from inventory: guarded transitions, compensation, the replica, and redelivery."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from messaging.consumer import MessageProcessor
from messaging.envelope import Envelope
from messaging.models import InboxMessage
from orders import services
from orders.handlers import HANDLERS
from orders.models import Order, OrderStatus
from product_replica.models import ProductReplica
from tests.factories import body, outbox, product_upserted, stock_event

pytestmark = pytest.mark.django_db

LINES = [{"product_id": 1, "quantity": 2}]
REJECTED_LINES = [{"product_id": 1, "requested": 2, "available": 1, "reason": "not enough stock"}]


@pytest.fixture
def order(products: dict) -> Order:
    lines = [services.LineRequest(product_id=1, quantity=2)]
    return services.order_place(user_id=7, idempotency_key="k", lines=lines).order


@pytest.fixture
def processor() -> MessageProcessor:
    return MessageProcessor(consumer="orders", handlers=HANDLERS, max_attempts=3)


def reserved(order: Order) -> Envelope:
    return stock_event("stock.reserved", order.id, lines=LINES)


def rejected(order: Order) -> Envelope:
    return stock_event(
        "stock.rejected", order.id, reason="insufficient stock", lines=REJECTED_LINES
    )


def handle(envelope: Envelope) -> None:
    """Run a handler the way the consumer does: inside one transaction."""
    with transaction.atomic():
        HANDLERS[envelope.type](envelope)


def status_of(order: Order) -> str:
    return Order.objects.get(pk=order.pk).status


def wait_until_blocked_by_this_connection(timeout: float = 10) -> None:
    """Until another connection waits for a lock this one holds (``pg_locks`` is live)."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks "
                "WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid)))"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)
    raise AssertionError("no other connection waited for this one's locks")


def history(order: Order) -> list[tuple[str, str]]:
    return [
        (change.from_status, change.to_status)
        for change in order.status_changes.order_by("at", "id")
    ]


class TestStockReserved:
    def test_confirms_a_pending_order_and_says_so(self, order: Order) -> None:
        event = reserved(order)

        handle(event)

        assert status_of(order) == OrderStatus.CONFIRMED
        [confirmed] = outbox("order.confirmed")
        assert confirmed.data == {"order_id": str(order.id), "user_id": 7, "total": "25.00"}
        assert confirmed.causation_id == event.id
        assert confirmed.correlation_id == str(order.id)
        last = order.status_changes.order_by("-at", "-id").first()
        assert last is not None
        assert str(last.caused_by_message_id) == event.id

    def test_after_shipping_changes_nothing(self, order: Order) -> None:
        Order.objects.filter(pk=order.pk).update(status=OrderStatus.SHIPPED)

        handle(reserved(order))

        assert status_of(order) == OrderStatus.SHIPPED
        assert outbox("order.confirmed") == []

    def test_a_second_reservation_of_a_confirmed_order_changes_nothing(self, order: Order) -> None:
        handle(reserved(order))
        handle(reserved(order))  # a new message id: inventory said it twice

        assert status_of(order) == OrderStatus.CONFIRMED
        assert len(outbox("order.confirmed")) == 1

    @pytest.mark.parametrize("final", [OrderStatus.CANCELLED, OrderStatus.REJECTED])
    def test_after_the_order_died_releases_the_stock(self, order: Order, final: str) -> None:
        Order.objects.filter(pk=order.pk).update(status=final)
        event = reserved(order)

        handle(event)

        assert status_of(order) == final
        [compensation] = outbox("order.cancelled")
        assert compensation.data["order_id"] == str(order.id)
        assert compensation.causation_id == event.id
        assert "releasing" in compensation.data["reason"]
        assert history(order)[-1] == (final, final)

    def test_racing_a_customer_cancel_releases_the_stock(self, order: Order) -> None:
        services.order_cancel(order_id=order.id, reason="changed my mind")

        handle(reserved(order))

        assert status_of(order) == OrderStatus.CANCELLED
        assert len(outbox("order.cancelled")) == 2  # the cancel, then the compensation
        assert outbox("order.confirmed") == []

    def test_history_entry_is_the_same_as_ever(self, order: Order) -> None:
        event = reserved(order)

        handle(event)

        stored = Order.objects.get(pk=order.pk)
        last = stored.status_changes.order_by("-at", "-id").first()
        assert last is not None
        assert (last.from_status, last.to_status, last.reason) == (
            "PENDING",
            "CONFIRMED",
            "stock reserved",
        )
        assert (str(last.caused_by_message_id), last.actor_user_id) == (event.id, None)
        assert stored.updated_at > order.updated_at
        assert last.at > order.updated_at

    def test_several_in_one_transaction(self, order: Order) -> None:
        other = services.order_place(
            user_id=8, idempotency_key="k", lines=[services.LineRequest(product_id=2, quantity=1)]
        ).order

        with transaction.atomic():  # as the consumer applies a batch
            for envelope in (reserved(order), reserved(other), reserved(order)):
                HANDLERS[envelope.type](envelope)

        assert (status_of(order), status_of(other)) == (OrderStatus.CONFIRMED,) * 2
        assert [e.data["order_id"] for e in outbox("order.confirmed")] == [
            str(order.id),
            str(other.id),
        ]
        assert history(order) == [("", "PENDING"), ("PENDING", "CONFIRMED")]

    @pytest.mark.django_db(transaction=True)
    def test_waits_for_a_customer_cancel_in_progress_then_releases_the_stock(
        self, order: Order
    ) -> None:
        """The conditional UPDATE waits for the row lock, then re-checks the committed status."""
        errors: list[BaseException] = []

        def deliver() -> None:
            try:
                handle(reserved(order))
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)
            finally:
                connection.close()

        worker = threading.Thread(target=deliver)
        with transaction.atomic():
            services.order_cancel(order_id=order.id, reason="changed my mind")
            worker.start()
            wait_until_blocked_by_this_connection()
        worker.join(timeout=10)

        assert not worker.is_alive()
        assert errors == []
        assert status_of(order) == OrderStatus.CANCELLED
        assert len(outbox("order.cancelled")) == 2  # the cancel, then the compensation
        assert outbox("order.confirmed") == []
        assert history(order)[-1] == (OrderStatus.CANCELLED, OrderStatus.CANCELLED)

    # In real transactions, as the consumer runs them: BEGIN and COMMIT are counted.
    @pytest.mark.django_db(transaction=True)
    def test_query_count_is_pinned(self, order: Order, django_assert_num_queries: Any) -> None:
        event = reserved(order)
        # BEGIN, update the PENDING order and insert its history row (one statement),
        # outbox row, COMMIT (its writer publishes the event after the commit: no NOTIFY)
        with django_assert_num_queries(4):
            handle(event)

    @pytest.mark.django_db(transaction=True)
    def test_query_count_with_where_the_units_are_held_is_pinned(
        self, order: Order, django_assert_num_queries: Any
    ) -> None:
        held = [
            {"product_id": 1, "warehouse": "wh-east", "quantity": 1},
            {"product_id": 1, "warehouse": "wh-west", "quantity": 1},
        ]
        event = stock_event("stock.reserved", order.id, lines=LINES, allocations=held)
        # the same four: the allocations are stored by the statement that moves the order
        with django_assert_num_queries(4):
            handle(event)
        assert order.allocations.count() == 2

    @pytest.mark.django_db(transaction=True)
    def test_query_count_through_the_consumer_is_pinned(
        self, order: Order, processor: MessageProcessor, django_assert_num_queries: Any
    ) -> None:
        message = body(reserved(order))
        # the handler's four, plus the inbox row
        with django_assert_num_queries(5):
            assert processor.process(message).action == "ack"

    @pytest.mark.django_db(transaction=True)
    def test_query_count_of_a_compensation_is_pinned(
        self, order: Order, django_assert_num_queries: Any
    ) -> None:
        Order.objects.filter(pk=order.pk).update(status=OrderStatus.CANCELLED)
        event = reserved(order)
        # BEGIN, the update that finds no PENDING order, lock and read it, history row,
        # outbox row, COMMIT
        with django_assert_num_queries(6):
            handle(event)


class TestStockRejected:
    def test_rejects_a_pending_order_with_the_reasons(self, order: Order) -> None:
        handle(rejected(order))

        stored = Order.objects.get(pk=order.pk)
        assert stored.status == OrderStatus.REJECTED
        assert stored.rejection_reason == "insufficient stock"
        assert stored.rejected_lines == REJECTED_LINES
        [event] = outbox("order.rejected")
        assert event.data == {
            "order_id": str(order.id),
            "user_id": 7,
            "reason": "insufficient stock",
        }

    @pytest.mark.parametrize(
        "status", [OrderStatus.CONFIRMED, OrderStatus.SHIPPED, OrderStatus.CANCELLED]
    )
    def test_late_rejection_never_moves_an_order_backwards(self, order: Order, status: str) -> None:
        Order.objects.filter(pk=order.pk).update(status=status)

        handle(rejected(order))

        assert status_of(order) == status
        assert outbox("order.rejected") == []

    def test_confirmed_then_rejected_stays_confirmed(self, order: Order) -> None:
        handle(reserved(order))
        handle(rejected(order))

        assert status_of(order) == OrderStatus.CONFIRMED
        assert history(order) == [("", "PENDING"), ("PENDING", "CONFIRMED")]

    def test_history_entry_is_the_same_as_ever(self, order: Order) -> None:
        event = rejected(order)

        handle(event)

        last = order.status_changes.order_by("-at", "-id").first()
        assert last is not None
        assert (last.from_status, last.to_status, last.reason) == (
            "PENDING",
            "REJECTED",
            "insufficient stock",
        )
        assert (str(last.caused_by_message_id), last.actor_user_id) == (event.id, None)

    @pytest.mark.django_db(transaction=True)
    def test_query_count_is_pinned(self, order: Order, django_assert_num_queries: Any) -> None:
        event = rejected(order)
        # BEGIN, update the PENDING order and insert its history row (one statement),
        # outbox row, COMMIT
        with django_assert_num_queries(4):
            handle(event)


class TestStockReleased:
    def test_is_recorded_without_changing_the_status(self, order: Order) -> None:
        services.order_cancel(order_id=order.id, reason="changed my mind")

        handle(stock_event("stock.released", order.id, reason="order cancelled"))

        assert status_of(order) == OrderStatus.CANCELLED
        last = order.status_changes.order_by("-at", "-id").first()
        assert last is not None
        assert (last.from_status, last.to_status) == ("CANCELLED", "CANCELLED")
        assert last.reason == "stock released: order cancelled"


class TestUnknownOrders:
    @pytest.mark.parametrize(
        "envelope",
        [
            stock_event("stock.reserved", "00000000-0000-4000-8000-000000000000", lines=LINES),
            stock_event(
                "stock.rejected",
                "00000000-0000-4000-8000-000000000000",
                reason="x",
                lines=REJECTED_LINES,
            ),
            stock_event("stock.released", "00000000-0000-4000-8000-000000000000", reason="x"),
        ],
        ids=["reserved", "rejected", "released"],
    )
    def test_go_to_the_dead_letter_queue_at_once(
        self, processor: MessageProcessor, envelope: Envelope
    ) -> None:
        outcome = processor.process(body(envelope))

        assert outcome.action == "dead"
        assert "unknown order" in outcome.reason
        assert not InboxMessage.objects.exists()
        assert outbox() == []


class TestRedelivery:
    @pytest.mark.parametrize("times", [2, 10])
    def test_the_same_message_has_one_effect(
        self, processor: MessageProcessor, order: Order, times: int
    ) -> None:
        message = body(reserved(order))

        outcomes = [processor.process(message) for _ in range(times)]

        assert {o.action for o in outcomes} == {"ack"}
        assert status_of(order) == OrderStatus.CONFIRMED
        assert len(outbox("order.confirmed")) == 1
        assert history(order) == [("", "PENDING"), ("PENDING", "CONFIRMED")]
        assert InboxMessage.objects.filter(consumer="orders").count() == 1

    def test_a_repeated_compensation_is_published_once(
        self, processor: MessageProcessor, order: Order
    ) -> None:
        services.order_cancel(order_id=order.id, reason="changed my mind")
        message = body(reserved(order))

        processor.process(message)
        processor.process(message)

        assert len(outbox("order.cancelled")) == 2  # the cancel, one compensation


class TestProductUpserted:
    def test_creates_then_updates_the_replica(self) -> None:
        now = timezone.now()
        handle(product_upserted(9, price="5.00", occurred_at=now))
        handle(product_upserted(9, price="6.50", active=False, occurred_at=now + timedelta(1)))

        replica = ProductReplica.objects.get(pk=9)
        assert (replica.price, replica.active, replica.sku) == (Decimal("6.50"), False, "SKU-9")

    def test_an_older_version_never_overwrites_a_newer_one(self) -> None:
        now = timezone.now()
        handle(product_upserted(9, price="6.50", occurred_at=now))
        handle(product_upserted(9, price="5.00", occurred_at=now - timedelta(seconds=1)))

        assert ProductReplica.objects.get(pk=9).price == Decimal("6.50")

    def test_a_null_category_is_stored_as_empty(self) -> None:
        event = product_upserted(9)
        handle(Envelope(**{**event.__dict__, "data": {**event.data, "category": None}}))

        assert ProductReplica.objects.get(pk=9).category == ""

    def test_a_new_price_applies_to_new_orders_only(self, order: Order) -> None:
        handle(product_upserted(1, price="99.00", occurred_at=timezone.now() + timedelta(1)))

        assert Order.objects.get(pk=order.pk).total == Decimal("25.00")
        again = services.order_place(
            user_id=7, idempotency_key="k2", lines=[services.LineRequest(1, 1)]
        )
        assert again.order.total == Decimal("99.00")

    def test_through_the_processor_a_redelivery_is_absorbed(
        self, processor: MessageProcessor
    ) -> None:
        message = body(product_upserted(9, price="5.00"))

        assert processor.process(message).action == "ack"
        assert processor.process(message).action == "ack"
        assert ProductReplica.objects.get(pk=9).price == Decimal("5.00")
