"""Reading, listing, cancelling and shipping orders: who may do what, and in which status."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from rest_framework.test import APIClient

from orders import services
from orders.models import Order, OrderStatus
from tests.factories import CUSTOMER_ID, OTHER_CUSTOMER_ID, outbox

pytestmark = pytest.mark.django_db


def place_for(user_id: int, key: str = "k", quantity: int = 1) -> Order:
    lines = [services.LineRequest(product_id=1, quantity=quantity)]
    return services.order_place(user_id=user_id, idempotency_key=key, lines=lines).order


def set_status(order: Order, status: str) -> None:
    Order.objects.filter(pk=order.pk).update(status=status)


@pytest.fixture
def mine(products: dict) -> Order:
    return place_for(CUSTOMER_ID, "mine")


@pytest.fixture
def theirs(products: dict) -> Order:
    return place_for(OTHER_CUSTOMER_ID, "theirs")


class TestReading:
    def test_owner_reads_the_order_with_lines_and_history(
        self, customer: APIClient, mine: Order
    ) -> None:
        response = customer.get(f"/api/orders/{mine.id}/")

        assert response.status_code == 200
        data = response.json()
        assert data["id"] == str(mine.id)
        assert data["lines"][0]["product_id"] == 1
        assert data["history"] == [
            {
                "from_status": "",
                "to_status": "PENDING",
                "reason": "placed",
                "at": data["history"][0]["at"],
                "caused_by_message_id": None,
                "actor_user_id": CUSTOMER_ID,
            }
        ]

    def test_someone_elses_order_is_404(self, customer: APIClient, theirs: Order) -> None:
        assert customer.get(f"/api/orders/{theirs.id}/").status_code == 404

    def test_a_missing_order_is_404(self, customer: APIClient) -> None:
        assert customer.get(f"/api/orders/{uuid.uuid4()}/").status_code == 404

    def test_staff_reads_anyones_order(self, staff: APIClient, theirs: Order) -> None:
        assert staff.get(f"/api/orders/{theirs.id}/").status_code == 200

    def test_no_token_is_401(self, mine: Order) -> None:
        response = APIClient().get(f"/api/orders/{mine.id}/")

        assert response.status_code == 401
        assert response.json()["code"] == "not_authenticated"


class TestListing:
    def test_a_customer_lists_only_their_own(
        self, customer: APIClient, mine: Order, theirs: Order
    ) -> None:
        data = customer.get("/api/orders/").json()

        assert data["count"] == 1
        assert [o["id"] for o in data["results"]] == [str(mine.id)]

    def test_a_customer_cannot_widen_the_list_with_user_id(
        self, customer: APIClient, mine: Order, theirs: Order
    ) -> None:
        data = customer.get(f"/api/orders/?user_id={OTHER_CUSTOMER_ID}").json()

        assert [o["id"] for o in data["results"]] == [str(mine.id)]

    def test_staff_lists_everyone_and_may_filter_by_user(
        self, staff: APIClient, mine: Order, theirs: Order
    ) -> None:
        everyone = staff.get("/api/orders/").json()
        one = staff.get(f"/api/orders/?user_id={OTHER_CUSTOMER_ID}").json()

        assert {o["id"] for o in everyone["results"]} == {str(mine.id), str(theirs.id)}
        assert [o["id"] for o in one["results"]] == [str(theirs.id)]

    def test_filters_by_status(self, customer: APIClient, products: dict) -> None:
        pending = place_for(CUSTOMER_ID, "a")
        confirmed = place_for(CUSTOMER_ID, "b", quantity=2)
        set_status(confirmed, OrderStatus.CONFIRMED)

        data = customer.get("/api/orders/?status=CONFIRMED").json()

        assert [o["id"] for o in data["results"]] == [str(confirmed.id)]
        assert str(pending.id) not in {o["id"] for o in data["results"]}

    def test_an_unknown_status_is_400(self, customer: APIClient) -> None:
        response = customer.get("/api/orders/?status=LOST")

        assert response.status_code == 400
        assert "status" in response.json()["detail"]

    def test_is_paginated_newest_first(self, customer: APIClient, products: dict) -> None:
        placed = [place_for(CUSTOMER_ID, f"k{i}", quantity=i + 1) for i in range(3)]

        first = customer.get("/api/orders/?page_size=2").json()
        second = customer.get(first["next"]).json()

        assert first["count"] == 3
        ids = [o["id"] for o in first["results"] + second["results"]]
        assert ids == [str(o.id) for o in reversed(placed)]

    def test_no_token_is_401(self) -> None:
        assert APIClient().get("/api/orders/").status_code == 401

    def test_query_count_does_not_grow_with_orders(
        self, customer: APIClient, products: dict, django_assert_num_queries: Any
    ) -> None:
        for i in range(5):
            place_for(CUSTOMER_ID, f"k{i}", quantity=i + 1)

        with django_assert_num_queries(2):  # count, the page with its lines
            customer.get("/api/orders/")


class TestCancelling:
    @pytest.mark.parametrize("status", [OrderStatus.PENDING, OrderStatus.CONFIRMED])
    def test_owner_cancels_and_inventory_is_told(
        self, customer: APIClient, mine: Order, status: str
    ) -> None:
        set_status(mine, status)

        response = customer.post(f"/api/orders/{mine.id}/cancel/")

        assert response.status_code == 200
        assert response.json()["status"] == "CANCELLED"
        assert response.json()["cancellation_reason"] == "cancelled by the customer"
        assert response.json()["history"][-1]["from_status"] == status
        [event] = outbox("order.cancelled")
        assert event.data == {
            "order_id": str(mine.id),
            "user_id": CUSTOMER_ID,
            "reason": "cancelled by the customer",
        }

    def test_staff_cancels_anyones_order(self, staff: APIClient, theirs: Order) -> None:
        response = staff.post(f"/api/orders/{theirs.id}/cancel/")

        assert response.status_code == 200
        assert response.json()["cancellation_reason"] == "cancelled by staff"

    def test_someone_elses_order_is_404_and_stays_as_it_was(
        self, customer: APIClient, theirs: Order
    ) -> None:
        assert customer.post(f"/api/orders/{theirs.id}/cancel/").status_code == 404
        assert Order.objects.get(pk=theirs.pk).status == OrderStatus.PENDING
        assert outbox("order.cancelled") == []

    @pytest.mark.parametrize(
        "status", [OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.SHIPPED]
    )
    def test_a_final_order_cannot_be_cancelled(
        self, customer: APIClient, mine: Order, status: str
    ) -> None:
        set_status(mine, status)

        response = customer.post(f"/api/orders/{mine.id}/cancel/")

        assert response.status_code == 409
        assert response.json()["code"] == "order_not_cancellable"
        assert status in response.json()["detail"]
        assert outbox("order.cancelled") == []

    def test_no_token_is_401(self, mine: Order) -> None:
        assert APIClient().post(f"/api/orders/{mine.id}/cancel/").status_code == 401


class TestShipping:
    def test_staff_ships_a_confirmed_order(self, staff: APIClient, mine: Order) -> None:
        set_status(mine, OrderStatus.CONFIRMED)

        response = staff.post(f"/api/orders/{mine.id}/ship/")

        assert response.status_code == 200
        assert response.json()["status"] == "SHIPPED"
        [event] = outbox("order.shipped")
        assert event.data == {"order_id": str(mine.id), "user_id": CUSTOMER_ID}

    @pytest.mark.parametrize(
        "status",
        [OrderStatus.PENDING, OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.SHIPPED],
    )
    def test_only_a_confirmed_order_ships(self, staff: APIClient, mine: Order, status: str) -> None:
        set_status(mine, status)

        response = staff.post(f"/api/orders/{mine.id}/ship/")

        assert response.status_code == 409
        assert response.json()["code"] == "order_not_shippable"
        assert outbox("order.shipped") == []

    def test_a_customer_may_not_ship_even_their_own(self, customer: APIClient, mine: Order) -> None:
        set_status(mine, OrderStatus.CONFIRMED)

        assert customer.post(f"/api/orders/{mine.id}/ship/").status_code == 403
        assert Order.objects.get(pk=mine.pk).status == OrderStatus.CONFIRMED

    def test_a_missing_order_is_404(self, staff: APIClient) -> None:
        assert staff.post(f"/api/orders/{uuid.uuid4()}/ship/").status_code == 404

    def test_no_token_is_401(self, mine: Order) -> None:
        assert APIClient().post(f"/api/orders/{mine.id}/ship/").status_code == 401
