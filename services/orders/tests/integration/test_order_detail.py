"""GET /api/orders/{id}/: one statement, and the same answer the serializer would give (the
list's items too)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import transaction
from django.db.models import Prefetch
from django.test import override_settings
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from orders import persistence, returns, services, shipments
from orders.apis import OrderDetailOutputSerializer, OrderOutputSerializer, _detail_body
from orders.handlers import HANDLERS
from orders.models import (
    Order,
    OrderAllocation,
    OrderLine,
    OrderStatusChange,
    Shipment,
    ShipmentLine,
)
from service_runtime import query_plans
from tests.factories import CUSTOMER_ID, OTHER_CUSTOMER_ID, stock_event

pytestmark = pytest.mark.django_db


def place(key: str, user_id: int = CUSTOMER_ID) -> Order:
    lines = [services.LineRequest(2, 3), services.LineRequest(1, 1)]
    return services.order_place(user_id=user_id, idempotency_key=key, lines=lines).order


def handle(event_type: str, order: Order, **data: Any) -> None:
    with transaction.atomic():
        HANDLERS[event_type](stock_event(event_type, order.id, **data))


@pytest.fixture
def orders(products: dict) -> list[Order]:
    """One order in each shape its detail can take."""
    pending = place("pending")
    confirmed = place("confirmed")
    handle("stock.reserved", confirmed, lines=[{"product_id": 2, "quantity": 3}])
    rejected = place("rejected")
    handle(
        "stock.rejected",
        rejected,
        reason="insufficient stock",
        lines=[{"product_id": 2, "requested": 3, "available": 1, "reason": "not enough stock"}],
    )
    cancelled = place("cancelled")
    services.order_cancel(order_id=cancelled.id, reason="changed my mind", actor_user_id=7)
    handle("stock.released", cancelled, reason="order cancelled")
    backordered = place("backordered")
    handle(
        "stock.backordered",
        backordered,
        lines=[{"product_id": 2, "quantity": 3}, {"product_id": 1, "quantity": 1}],
        allocations=[{"product_id": 1, "warehouse": "wh-east", "quantity": 1}],
        waiting=[{"product_id": 2, "quantity": 3}],
    )
    return [pending, confirmed, rejected, cancelled, backordered, returned(), partly_shipped()]


def returned() -> Order:
    """Shipped whole, then two units of product 2 returned and received (a refund)."""
    order = place("returned")
    held = [
        {"product_id": 2, "warehouse": "wh-east", "quantity": 3},
        {"product_id": 1, "warehouse": "wh-east", "quantity": 1},
    ]
    handle("stock.reserved", order, lines=[{"product_id": 2, "quantity": 3}], allocations=held)
    with override_settings(MESSAGING_EVENT_VERSIONS="latest"):
        shipments.order_ship(order_id=order.id)
    sent_back = returns.return_request(order_id=order.id, lines=[services.LineRequest(2, 2)])
    returns.return_receive(
        return_id=sent_back.pk,
        warehouse="wh-east",
        lines=[returns.ReceivedLine(product_id=2, restocked=1, damaged=1)],
    )
    return order


def partly_shipped() -> Order:
    """Held in two warehouses, two shipments from one of them."""
    order = place("partly shipped")
    held = [
        {"product_id": 2, "warehouse": "wh-east", "quantity": 2},
        {"product_id": 2, "warehouse": "wh-west", "quantity": 1},
        {"product_id": 1, "warehouse": "wh-east", "quantity": 1},
    ]
    handle("stock.reserved", order, lines=[{"product_id": 2, "quantity": 3}], allocations=held)
    with override_settings(MESSAGING_EVENT_VERSIONS="latest"):
        shipments.order_ship_from(
            order_id=order.id, warehouse="wh-east", lines=[services.LineRequest(2, 1)]
        )
        shipments.order_ship_from(order_id=order.id, warehouse="wh-east", actor_user_id=99)
    return order


def serialized(order: Order) -> Any:
    """What the serializer that documents the detail shows of the stored order."""
    loaded = Order.objects.prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.order_by("id")),
        Prefetch("status_changes", queryset=OrderStatusChange.objects.order_by("at", "id")),
        Prefetch("allocations", queryset=OrderAllocation.objects.order_by("id")),
        Prefetch(
            "shipments",
            queryset=Shipment.objects.order_by("id").prefetch_related(
                Prefetch("lines", queryset=ShipmentLine.objects.order_by("id"))
            ),
        ),
    ).get(pk=order.pk)
    return OrderDetailOutputSerializer(loaded).data


class TestTheAnswer:
    def test_is_what_the_serializer_shows(self, orders: list[Order]) -> None:
        for order in orders:
            detail = persistence.order_detail_get(order_id=order.id, owner_id=None)
            assert detail is not None
            assert _detail_body(detail) == serialized(order)

    def test_a_list_shows_what_the_serializer_shows(
        self, orders: list[Order], customer: APIClient
    ) -> None:
        listed = customer.get("/api/orders/").json()["results"]

        newest_first = Order.objects.order_by("-created_at", "-id").prefetch_related(
            Prefetch("lines", queryset=OrderLine.objects.order_by("id"))
        )
        assert listed == OrderOutputSerializer(newest_first, many=True).data

    def test_the_orm_way_reads_the_same(self, orders: list[Order]) -> None:
        for order in orders:
            for owner_id in (None, CUSTOMER_ID):
                written_out = persistence.order_detail_get(order_id=order.id, owner_id=owner_id)
                by_the_orm = persistence._order_detail_get_orm(order.id, owner_id)
                assert written_out == by_the_orm is not None

    def test_lines_in_the_order_they_were_placed_in(self, orders: list[Order]) -> None:
        detail = persistence.order_detail_get(order_id=orders[0].id, owner_id=CUSTOMER_ID)

        assert detail is not None
        assert [line.product_id for line in detail.lines] == [2, 1]

    def test_someone_elses_or_a_missing_order_is_none(self, orders: list[Order]) -> None:
        for owner_id in (OTHER_CUSTOMER_ID, None):
            assert persistence.order_detail_get(order_id=uuid.uuid4(), owner_id=owner_id) is None
        assert (
            persistence.order_detail_get(order_id=orders[0].id, owner_id=OTHER_CUSTOMER_ID) is None
        )
        assert persistence._order_detail_get_orm(orders[0].id, OTHER_CUSTOMER_ID) is None

    def test_an_order_without_rows_below_it_shows_none(self, products: dict) -> None:
        order = place("bare")
        OrderLine.objects.filter(order=order).delete()
        OrderStatusChange.objects.filter(order=order).delete()

        detail = persistence.order_detail_get(order_id=order.id, owner_id=None)

        assert detail is not None
        assert (detail.lines, detail.history) == ((), ())


class TestCost:
    def test_one_query_with_allocations_and_shipments(
        self, customer: APIClient, orders: list[Order], django_assert_num_queries: Any
    ) -> None:
        with django_assert_num_queries(1):  # lines, history, allocations, shipments and theirs
            response = customer.get(f"/api/orders/{orders[-1].id}/")
        body = response.json()
        assert body["status"] == "PARTIALLY_SHIPPED"
        assert [(a["warehouse"], a["shipped_quantity"]) for a in body["allocations"]] == [
            ("wh-east", 2),
            ("wh-west", 0),
            ("wh-east", 1),
        ]
        assert [len(s["lines"]) for s in body["shipments"]] == [1, 2]

    def test_one_query(
        self, customer: APIClient, orders: list[Order], django_assert_num_queries: Any
    ) -> None:
        with django_assert_num_queries(1):  # the order with its lines and history
            response = customer.get(f"/api/orders/{orders[1].id}/")
        assert response.status_code == 200

    def test_one_query_for_staff_and_for_a_missing_order(
        self, staff: APIClient, customer: APIClient, django_assert_num_queries: Any
    ) -> None:
        with django_assert_num_queries(1):
            assert staff.get(f"/api/orders/{uuid.uuid4()}/").status_code == 404
        with django_assert_num_queries(1):
            assert customer.get(f"/api/orders/{uuid.uuid4()}/").status_code == 404

    def test_prepared_once_and_run_on_a_generic_plan(
        self, customer: APIClient, staff: APIClient, orders: list[Order]
    ) -> None:
        """Planned on every request the statement cost PostgreSQL five times its work: it is
        prepared once per connection (one text for a customer, one for staff)."""
        texts = ("SELECT o.",)
        before = query_plans.plans_of(*texts).get(texts[0], (0, 0))
        for order in orders:
            assert customer.get(f"/api/orders/{order.id}/").status_code == 200
            assert staff.get(f"/api/orders/{order.id}/").status_code == 200
        assert query_plans.plans_of(*texts)[texts[0]] == (before[0] + 2 * len(orders), 0)


class TestAListPage:
    """GET /api/orders/ reads a page with its lines in one statement and renders, byte for
    byte, what the serializer that documents its items would."""

    @pytest.fixture
    def shapes(self, orders: list[Order], products: dict) -> list[Order]:
        """The detail's shapes, a customer's order among others', one with no lines left,
        and times on a whole second (no fraction shown) and with microseconds."""
        others = place("someone else's", user_id=OTHER_CUSTOMER_ID)
        bare = place("bare")
        OrderLine.objects.filter(order=bare).delete()
        Order.objects.filter(pk=orders[0].pk).update(
            created_at=orders[0].created_at.replace(microsecond=0)
        )
        return [*orders, others, bare]

    @staticmethod
    def rendered(page: dict[str, Any], orders: list[Order]) -> bytes:
        """The page as the serializer and DRF's renderer show it, with the page's links."""
        loaded = {
            order.pk: order
            for order in Order.objects.prefetch_related(
                Prefetch("lines", queryset=OrderLine.objects.order_by("id"))
            ).filter(pk__in=[order.pk for order in orders])
        }
        ids = [uuid.UUID(item["id"]) for item in page["results"]]
        items = OrderOutputSerializer([loaded[pk] for pk in ids], many=True).data
        return JSONRenderer().render(
            {"count": page["count"], "next": page["next"], "previous": page["previous"],
             "results": items}
        )  # fmt: skip

    def test_every_page_is_the_serializers_byte_for_byte(
        self, shapes: list[Order], staff: APIClient, customer: APIClient
    ) -> None:
        for client, url in ((staff, "/api/orders/?page_size=2"), (customer, "/api/orders/")):
            seen = 0
            while url:
                response = client.get(url)
                page = response.json()
                assert response.content == self.rendered(page, shapes)
                seen += len(page["results"])
                url = page["next"]
            assert seen == (len(shapes) if client is staff else len(shapes) - 1)

    def test_the_orm_way_reads_the_same(self, shapes: list[Order]) -> None:
        newest = Order.objects.order_by("-created_at", "-id")
        for orders in (
            newest[:3],
            newest.filter(user_id=CUSTOMER_ID)[:50],
            Order.objects.order_by("created_at", "id")[2:5],
            newest.filter(status="REJECTED")[:10],
            newest.filter(user_id=-1)[:10],
        ):
            written_out = persistence.order_page(orders)
            assert written_out == persistence._order_page_orm(orders)
            ids = list(orders.values_list("id", flat=True))
            assert [detail.id for detail in written_out] == ids
        assert {detail.lines for detail in persistence.order_page(newest[:10])} >= {()}

    def test_an_unordered_page_is_refused(self) -> None:
        with pytest.raises(ValueError, match="ordering"):
            persistence.order_page(Order.objects.all()[:5])

    def test_one_statement_with_its_lines_besides_the_count(
        self, shapes: list[Order], staff: APIClient, django_assert_num_queries: Any
    ) -> None:
        for i in range(60):
            place(f"more-{i}")
        first = staff.get("/api/orders/").json()
        assert len(first["results"]) == 50 and all(o["lines"] for o in first["results"])

        for url in ("/api/orders/", first["next"], f"/api/orders/?user_id={CUSTOMER_ID}"):
            with django_assert_num_queries(2):  # the count, the page with its lines
                assert staff.get(url).status_code == 200
