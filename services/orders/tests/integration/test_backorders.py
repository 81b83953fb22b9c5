"""Orders that wait for stock: stock.backordered (PENDING → BACKORDERED, holding what is
allocated), then stock.reserved (→ CONFIRMED), a cancel, and the deadlines."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from messaging.consumer import RejectMessage
from messaging.envelope import Envelope
from orders import deadlines, services
from orders.handlers import HANDLERS
from orders.models import Order, OrderStatus
from tests.factories import CUSTOMER_ID, outbox, stock_event

pytestmark = pytest.mark.django_db

# Five units of product 1, two of product 2: inventory has three of product 1 and both of
# product 2 now, two units of product 1 wait.
LINES = [services.LineRequest(1, 5), services.LineRequest(2, 2)]
ORDERED = [{"product_id": 1, "quantity": 5}, {"product_id": 2, "quantity": 2}]
HELD = [
    {"product_id": 1, "warehouse": "wh-east", "quantity": 3},
    {"product_id": 2, "warehouse": "wh-east", "quantity": 2},
]
WAITING = [{"product_id": 1, "quantity": 2}]
FULL = [
    {"product_id": 1, "warehouse": "wh-east", "quantity": 3},
    {"product_id": 1, "warehouse": "wh-west", "quantity": 2},
    {"product_id": 2, "warehouse": "wh-east", "quantity": 2},
]


def place(key: str = "k") -> Order:
    return services.order_place(user_id=CUSTOMER_ID, idempotency_key=key, lines=LINES).order


def handle(event: Envelope) -> None:
    with transaction.atomic():
        HANDLERS[event.type](event)


def backordered(order: Order) -> Envelope:
    return stock_event(
        "stock.backordered", order.id, lines=ORDERED, allocations=HELD, waiting=WAITING
    )


def reserved(order: Order) -> Envelope:
    return stock_event("stock.reserved", order.id, lines=ORDERED, allocations=FULL)


def held(order: Order) -> list[tuple[int, str, int]]:
    return list(order.allocations.order_by("id").values_list("product_id", "warehouse", "quantity"))


def as_tuples(allocations: list[dict[str, Any]]) -> list[tuple[int, str, int]]:
    return [(a["product_id"], a["warehouse"], a["quantity"]) for a in allocations]


def status(order: Order) -> str:
    return Order.objects.get(pk=order.pk).status


@pytest.fixture
def waiting(products: dict) -> Order:
    order = place()
    handle(backordered(order))
    return order


class TestBackordered:
    def test_a_pending_order_waits_holding_what_is_allocated(self, waiting: Order) -> None:
        assert status(waiting) == OrderStatus.BACKORDERED
        assert held(waiting) == as_tuples(HELD)
        last = waiting.status_changes.order_by("-at", "-id").first()
        assert last is not None
        assert (last.from_status, last.to_status) == ("PENDING", "BACKORDERED")
        assert last.reason == "waiting on backorder for 2 units of product 1"
        [event] = outbox("order.backordered")  # validated against its schema
        assert event.data == {"order_id": str(waiting.id), "user_id": CUSTOMER_ID, "lines": WAITING}
        assert event.causation_id is not None

    def test_the_api_shows_it_and_what_is_held(self, waiting: Order, customer: APIClient) -> None:
        body = customer.get(f"/api/orders/{waiting.id}/").json()

        assert body["status"] == "BACKORDERED"
        assert [(a["product_id"], a["warehouse"], a["quantity"]) for a in body["allocations"]] == (
            as_tuples(HELD)
        )
        listed = customer.get("/api/orders/?status=BACKORDERED").json()["results"]
        assert [order["id"] for order in listed] == [str(waiting.id)]

    def test_stock_reserved_confirms_it_with_the_full_allocation(self, waiting: Order) -> None:
        handle(reserved(waiting))

        assert status(waiting) == OrderStatus.CONFIRMED
        assert held(waiting) == as_tuples(FULL)
        [event] = outbox("order.confirmed")
        assert event.data == {
            "order_id": str(waiting.id),
            "user_id": CUSTOMER_ID,
            "total": "69.00",
        }  # 5 x 12.50 + 2 x 3.25
        moves = list(
            waiting.status_changes.order_by("at", "id").values_list("to_status", flat=True)
        )
        assert moves == ["PENDING", "BACKORDERED", "CONFIRMED"]

    def test_stock_reserved_in_a_batch_confirms_it_too(
        self, waiting: Order, products: dict
    ) -> None:
        other = place("other")
        lines = [{"product_id": 1, "quantity": 5}]
        with transaction.atomic():
            rejected = HANDLERS["stock.reserved"].many(
                [stock_event("stock.reserved", other.id, lines=lines), reserved(waiting)]
            )

        assert rejected == {}
        assert (status(waiting), status(other)) == (OrderStatus.CONFIRMED, OrderStatus.CONFIRMED)
        assert held(waiting) == as_tuples(FULL)
        assert sorted(e.data["order_id"] for e in outbox("order.confirmed")) == sorted(
            [str(waiting.id), str(other.id)]
        )

    def test_a_late_backorder_after_the_confirmation_is_ignored(self, waiting: Order) -> None:
        handle(reserved(waiting))
        handle(backordered(waiting))  # the same fact under another message id

        assert status(waiting) == OrderStatus.CONFIRMED
        assert held(waiting) == as_tuples(FULL)
        assert len(outbox("order.backordered")) == 1
        assert len(outbox("order.confirmed")) == 1

    def test_a_backorder_after_the_reservation_never_moves_it_back(self, products: dict) -> None:
        order = place()
        handle(reserved(order))
        handle(backordered(order))

        assert status(order) == OrderStatus.CONFIRMED
        assert held(order) == as_tuples(FULL)
        assert outbox("order.backordered") == []

    def test_a_repeated_backorder_changes_nothing(self, waiting: Order) -> None:
        handle(backordered(waiting))

        assert status(waiting) == OrderStatus.BACKORDERED
        assert held(waiting) == as_tuples(HELD)
        assert len(outbox("order.backordered")) == 1
        assert waiting.status_changes.count() == 2

    def test_stock_rejected_for_it_is_ignored(self, waiting: Order) -> None:
        handle(stock_event("stock.rejected", waiting.id, reason="no", lines=[]))

        assert status(waiting) == OrderStatus.BACKORDERED

    def test_a_backorder_for_a_cancelled_order_is_released(self, products: dict) -> None:
        order = place()
        services.order_cancel(order_id=order.id, reason="changed my mind")
        handle(backordered(order))

        assert status(order) == OrderStatus.CANCELLED
        released = outbox("order.cancelled")
        assert len(released) == 2  # the cancel, then again for the units held meanwhile
        assert "stock backordered after the order was cancelled" in released[1].data["reason"]
        assert outbox("order.backordered") == []

    def test_a_backorder_for_an_unknown_order_is_dead_lettered(self, products: dict) -> None:
        event = stock_event(
            "stock.backordered",
            "00000000-0000-4000-8000-000000000000",
            lines=ORDERED,
            allocations=[],
            waiting=WAITING,
        )
        with pytest.raises(RejectMessage, match="unknown order"):
            handle(event)


class TestCancel:
    def test_the_customer_cancels_a_backordered_order(
        self, waiting: Order, customer: APIClient
    ) -> None:
        response = customer.post(f"/api/orders/{waiting.id}/cancel/")

        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "CANCELLED"
        assert [line["cancelled_quantity"] for line in body["lines"]] == [5, 2]
        [event] = outbox("order.cancelled")
        assert event.data == {
            "order_id": str(waiting.id),
            "user_id": CUSTOMER_ID,
            "reason": "cancelled by the customer",
        }

    def test_stock_reserved_after_the_cancel_is_released(
        self, waiting: Order, customer: APIClient
    ) -> None:
        customer.post(f"/api/orders/{waiting.id}/cancel/")
        handle(reserved(waiting))

        assert status(waiting) == OrderStatus.CANCELLED
        assert len(outbox("order.cancelled")) == 2
        assert outbox("order.confirmed") == []


class TestDeadlines:
    def test_the_pending_deadline_skips_a_backordered_order(self, waiting: Order) -> None:
        Order.objects.filter(pk=waiting.pk).update(deadline=timezone.now() - timedelta(hours=1))

        assert services.orders_expire_pending() == 0
        assert status(waiting) == OrderStatus.BACKORDERED
        assert outbox("order.cancelled") == []

    def test_the_backorder_deadline_cancels_it_when_set(self, waiting: Order) -> None:
        later = timezone.now() + timedelta(minutes=2)
        assert services.orders_expire_backordered(older_than=timedelta(minutes=5), now=later) == 0

        cancelled = services.orders_expire_backordered(older_than=timedelta(minutes=1), now=later)

        assert cancelled == 1
        stored = Order.objects.get(pk=waiting.pk)
        assert stored.status == OrderStatus.CANCELLED
        assert stored.cancellation_reason == "backorder deadline passed"
        [event] = outbox("order.cancelled")
        assert event.data["reason"] == "backorder deadline passed"

    def test_no_backorder_deadline_when_unset(self, waiting: Order) -> None:
        later = timezone.now() + timedelta(days=365)

        assert services.orders_expire_backordered(older_than=None, now=later) == 0
        assert status(waiting) == OrderStatus.BACKORDERED

    @pytest.mark.parametrize(("seconds", "expected"), [(0, None), (-1, None), (90, 90)])
    def test_the_deadline_comes_from_settings(
        self, settings: Any, seconds: int, expected: int | None
    ) -> None:
        settings.ORDERS_BACKORDER_DEADLINE_SECONDS = seconds

        deadline = deadlines.backorder_deadline()

        assert deadline == (None if expected is None else timedelta(seconds=expected))

    def test_the_deadline_job_cancels_it_only_when_set(self, waiting: Order, settings: Any) -> None:
        Order.objects.filter(pk=waiting.pk).update(
            created_at=timezone.now() - timedelta(minutes=10)
        )
        job = deadlines.OrderDeadlineJob(interval=1)
        job._database.answered()  # it just did: no connection check (it would close the test's)
        settings.ORDERS_BACKORDER_DEADLINE_SECONDS = 0
        job.work()
        assert status(waiting) == OrderStatus.BACKORDERED

        settings.ORDERS_BACKORDER_DEADLINE_SECONDS = 300
        job.work()
        assert status(waiting) == OrderStatus.CANCELLED
        assert job.expired == 1

    def test_the_command_cancels_it_when_set(self, waiting: Order, settings: Any) -> None:
        Order.objects.filter(pk=waiting.pk).update(
            created_at=timezone.now() - timedelta(minutes=10)
        )
        settings.ORDERS_BACKORDER_DEADLINE_SECONDS = 60
        out = StringIO()

        call_command("expire_pending_orders", stdout=out)

        assert "cancelled 1 BACKORDERED orders past the backorder deadline" in out.getvalue()
        assert status(waiting) == OrderStatus.CANCELLED
