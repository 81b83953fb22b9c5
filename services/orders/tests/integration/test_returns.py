"""Returns: a customer sends shipped units back (POST /api/orders/{id}/returns/), staff receive
them into a warehouse (POST /api/returns/{id}/receive/) and the refund is recorded and
announced."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from messaging.schemas import validate
from orders import shipments
from orders.models import Order, OrderLine, Return, ReturnLine, ReturnStatus, Shipment
from tests.factories import CUSTOMER_ID, STAFF_ID, outbox
from tests.integration.test_shipments import place, reserve

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("latest")]


@pytest.fixture
def latest(settings: Any) -> None:
    """Every service runs this release: orders ship in parts."""
    settings.MESSAGING_EVENT_VERSIONS = "latest"


def confirmed(key: str = "k") -> Order:
    """The order of the shipment tests, reserved: five units of product 1 at 12.50 (three in
    wh-east, two in wh-west), two of product 2 at 3.25 (wh-east)."""
    order = place(key)
    reserve(order)
    return order


@pytest.fixture
def order(products: dict) -> Order:
    """Confirmed, and what wh-east holds shipped: 3 of product 1, 2 of product 2."""
    shipped = confirmed()
    shipments.order_ship_from(order_id=shipped.id, warehouse="wh-east", actor_user_id=STAFF_ID)
    return shipped


def request_return(client: APIClient, order: Order, lines: list[Any], reason: str = "") -> Any:
    payload: dict[str, Any] = {"lines": lines}
    if reason:
        payload["reason"] = reason
    return client.post(f"/api/orders/{order.id}/returns/", payload, format="json")


def receive(client: APIClient, return_id: int, lines: list[Any], warehouse: str = "wh-east") -> Any:
    return client.post(
        f"/api/returns/{return_id}/receive/",
        {"warehouse": warehouse, "lines": lines},
        format="json",
    )


def requested(client: APIClient, order: Order, product_id: int = 1, quantity: int = 2) -> int:
    response = request_return(client, order, [{"product_id": product_id, "quantity": quantity}])
    assert response.status_code == 201, response.json()
    return int(response.json()["id"])


def nothing_returned(order: Order) -> None:
    assert not Return.objects.filter(order=order).exists()
    assert outbox("return.requested") == []


class TestRequest:
    def test_the_customer_returns_shipped_units(self, customer: APIClient, order: Order) -> None:
        response = request_return(customer, order, [{"product_id": 1, "quantity": 2}], "too big")

        assert response.status_code == 201
        body = response.json()
        assert body == {
            "id": body["id"],
            "order_id": str(order.id),
            "user_id": CUSTOMER_ID,
            "status": "REQUESTED",
            "reason": "too big",
            "lines": [
                {
                    "product_id": 1,
                    "sku": "SKU-1",
                    "name": "Product 1",
                    "quantity": 2,
                    "restocked": 0,
                    "damaged": 0,
                    "unit_price": "12.50",
                }
            ],
            "warehouse": None,
            "refund_amount": None,
            "requested_at": body["requested_at"],
            "received_at": None,
        }
        [event] = outbox("return.requested")
        validate("return.requested", 1, event.data)
        assert event.data == {
            "order_id": str(order.id),
            "user_id": CUSTOMER_ID,
            "return_id": body["id"],
            "lines": [{"product_id": 1, "quantity": 2}],
            "reason": "too big",
        }
        note = order.status_changes.order_by("-at", "-id").first()
        assert note is not None
        assert (note.from_status, note.to_status) == ("PARTIALLY_SHIPPED", "PARTIALLY_SHIPPED")
        assert note.reason == f"return {body['id']} requested: 2 units"

    def test_staff_may_request_one_too(self, staff: APIClient, order: Order) -> None:
        response = request_return(staff, order, [{"product_id": 2, "quantity": 2}])

        assert response.status_code == 201
        assert response.json()["user_id"] == CUSTOMER_ID  # the order's owner, not staff

    def test_more_than_shipped_is_refused(self, customer: APIClient, order: Order) -> None:
        response = request_return(customer, order, [{"product_id": 1, "quantity": 4}])

        assert response.status_code == 400
        error = response.json()
        assert error["code"] == "invalid"
        assert "4 units of product 1 to return, 3 shipped" in error["errors"]["lines"][0]
        nothing_returned(order)

    def test_more_than_shipped_less_already_requested_is_refused(
        self, customer: APIClient, order: Order
    ) -> None:
        requested(customer, order, quantity=2)

        response = request_return(customer, order, [{"product_id": 1, "quantity": 2}])

        assert response.status_code == 400
        assert "1 shipped and not in a return already" in response.json()["errors"]["lines"][0]
        assert Return.objects.filter(order=order).count() == 1
        assert requested(customer, order, quantity=1)  # the last unit still may

    def test_units_of_a_received_return_count_as_returned(
        self, customer: APIClient, staff: APIClient, order: Order
    ) -> None:
        return_id = requested(customer, order, quantity=3)
        receive(staff, return_id, [{"product_id": 1, "restocked": 3, "damaged": 0}])

        response = request_return(customer, order, [{"product_id": 1, "quantity": 1}])

        assert response.status_code == 400

    def test_past_the_window_is_refused(
        self, customer: APIClient, order: Order, settings: Any
    ) -> None:
        settings.ORDERS_RETURN_WINDOW_DAYS = 30
        Shipment.objects.filter(order=order).update(
            created_at=timezone.now() - timedelta(days=30, minutes=1)
        )

        response = request_return(customer, order, [{"product_id": 1, "quantity": 1}])

        assert response.status_code == 409
        assert response.json()["code"] == "return_window_closed"
        nothing_returned(order)

    def test_the_window_counts_from_the_last_shipment(
        self, customer: APIClient, order: Order, settings: Any
    ) -> None:
        settings.ORDERS_RETURN_WINDOW_DAYS = 30
        Shipment.objects.filter(order=order).update(created_at=timezone.now() - timedelta(days=40))
        shipments.order_ship_from(order_id=order.id, warehouse="wh-west")  # today

        response = request_return(customer, order, [{"product_id": 1, "quantity": 5}])

        assert response.status_code == 201

    def test_nothing_shipped_is_refused(self, customer: APIClient, products: dict) -> None:
        order = confirmed("not shipped")

        response = request_return(customer, order, [{"product_id": 1, "quantity": 1}])

        assert response.status_code == 409
        assert response.json()["code"] == "nothing_shipped"
        nothing_returned(order)

    def test_another_customers_order_is_not_found(
        self, other_customer: APIClient, order: Order
    ) -> None:
        response = request_return(other_customer, order, [{"product_id": 1, "quantity": 1}])

        assert response.status_code == 404
        assert other_customer.get(f"/api/orders/{order.id}/returns/").status_code == 404
        nothing_returned(order)

    @pytest.mark.parametrize(
        ("lines", "problem"),
        [
            ([{"product_id": 7, "quantity": 1}], "product 7 is not in this order"),
            (
                [{"product_id": 1, "quantity": 1}, {"product_id": 1, "quantity": 1}],
                "product 1 appears twice",
            ),
            ([{"product_id": 1, "quantity": 0}], "greater than or equal to 1"),
            ([{"product_id": 1, "quantity": -2}], "greater than or equal to 1"),
            ([{"product_id": 1, "quantity": "1"}], "valid integer"),
            ([], "empty"),
        ],
    )
    def test_bad_lines_are_refused(
        self, customer: APIClient, order: Order, lines: list[Any], problem: str
    ) -> None:
        response = request_return(customer, order, lines)

        assert response.status_code == 400
        assert problem in response.json()["detail"]
        nothing_returned(order)

    def test_a_reason_too_long_is_refused(self, customer: APIClient, order: Order) -> None:
        response = request_return(customer, order, [{"product_id": 1, "quantity": 1}], "x" * 2001)

        assert response.status_code == 400
        nothing_returned(order)


class TestReceive:
    def test_staff_receive_it_and_the_refund_is_announced(
        self, customer: APIClient, staff: APIClient, order: Order
    ) -> None:
        return_id = requested(customer, order, quantity=2)

        response = receive(staff, return_id, [{"product_id": 1, "restocked": 1, "damaged": 1}])

        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "RECEIVED"
        assert body["warehouse"] == "wh-east"
        assert body["refund_amount"] == "25.00"  # 12.50 x 2
        assert body["received_at"] is not None
        assert [(x["restocked"], x["damaged"]) for x in body["lines"]] == [(1, 1)]
        [received] = outbox("return.received")
        [refunded] = outbox("return.refunded")
        validate("return.received", 1, received.data)
        validate("return.refunded", 1, refunded.data)
        assert received.data == {
            "order_id": str(order.id),
            "user_id": CUSTOMER_ID,
            "return_id": return_id,
            "warehouse": "wh-east",
            "lines": [{"product_id": 1, "restocked": 1, "damaged": 1}],
            "refund_amount": "25.00",
        }
        assert refunded.data == {
            "order_id": str(order.id),
            "user_id": CUSTOMER_ID,
            "return_id": return_id,
            "amount": "25.00",
        }
        kinds = [e.type for e in outbox() if e.type.startswith("return.")]
        assert kinds == ["return.requested", "return.received", "return.refunded"]
        note = order.status_changes.order_by("-at", "-id").first()
        assert note is not None
        assert note.from_status == note.to_status == "PARTIALLY_SHIPPED"
        assert note.reason == (
            f"return {return_id} received into wh-east: 1 unit restocked, 1 unit damaged; "
            "refund 25.00"
        )
        assert note.actor_user_id == STAFF_ID

    def test_the_order_shows_what_came_back_and_the_refund(
        self, customer: APIClient, staff: APIClient, order: Order
    ) -> None:
        first = requested(customer, order, product_id=1, quantity=2)
        second = requested(customer, order, product_id=2, quantity=2)
        receive(staff, first, [{"product_id": 1, "restocked": 2, "damaged": 0}])
        receive(staff, second, [{"product_id": 2, "restocked": 0, "damaged": 1}])

        body = customer.get(f"/api/orders/{order.id}/").json()

        assert body["refunded_total"] == "28.25"  # 2 x 12.50 + 1 x 3.25
        assert {x["product_id"]: x["returned_quantity"] for x in body["lines"]} == {1: 2, 2: 1}
        [listed] = customer.get("/api/orders/").json()["results"]
        assert listed["refunded_total"] == "28.25"
        assert {x["product_id"]: x["returned_quantity"] for x in listed["lines"]} == {1: 2, 2: 1}
        returns = customer.get(f"/api/orders/{order.id}/returns/").json()
        assert [(r["id"], r["status"]) for r in returns] == [
            (first, "RECEIVED"),
            (second, "RECEIVED"),
        ]

    def test_a_line_left_out_brought_nothing_back(
        self, customer: APIClient, staff: APIClient, order: Order
    ) -> None:
        response = request_return(
            customer,
            order,
            [{"product_id": 1, "quantity": 1}, {"product_id": 2, "quantity": 1}],
        )
        return_id = response.json()["id"]

        body = receive(staff, return_id, [{"product_id": 2, "restocked": 1, "damaged": 0}]).json()

        assert body["refund_amount"] == "3.25"
        [received] = outbox("return.received")
        assert received.data["lines"] == [{"product_id": 2, "restocked": 1, "damaged": 0}]
        assert OrderLine.objects.get(order=order, product_id=1).returned_quantity == 0

    def test_a_second_receipt_is_a_conflict(
        self, customer: APIClient, staff: APIClient, order: Order
    ) -> None:
        return_id = requested(customer, order)
        receive(staff, return_id, [{"product_id": 1, "restocked": 2, "damaged": 0}])

        response = receive(staff, return_id, [{"product_id": 1, "restocked": 2, "damaged": 0}])

        assert response.status_code == 409
        assert response.json()["code"] == "return_already_received"
        assert len(outbox("return.refunded")) == 1
        assert OrderLine.objects.get(order=order, product_id=1).returned_quantity == 2
        assert Order.objects.get(pk=order.pk).refunded_total == Decimal("25.00")

    @pytest.mark.parametrize(
        ("lines", "problem"),
        [
            ([{"product_id": 1, "restocked": 2, "damaged": 1}], "2 restocked and 1 damaged"),
            ([{"product_id": 1, "restocked": 0, "damaged": 0}], "at least one unit"),
            ([{"product_id": 2, "restocked": 1, "damaged": 0}], "product 2 is not in this"),
            (
                [
                    {"product_id": 1, "restocked": 1, "damaged": 0},
                    {"product_id": 1, "restocked": 1, "damaged": 0},
                ],
                "product 1 appears twice",
            ),
            ([{"product_id": 1, "restocked": -1, "damaged": 2}], "greater than or equal to 0"),
            ([], "empty"),
        ],
    )
    def test_bad_lines_are_refused(
        self,
        customer: APIClient,
        staff: APIClient,
        order: Order,
        lines: list[Any],
        problem: str,
    ) -> None:
        return_id = requested(customer, order, quantity=2)

        response = receive(staff, return_id, lines)

        assert response.status_code == 400
        assert problem in response.json()["detail"]
        assert Return.objects.get(pk=return_id).status == ReturnStatus.REQUESTED
        assert outbox("return.received") == outbox("return.refunded") == []

    @pytest.mark.parametrize("warehouse", ["", "has space", "x" * 33])
    def test_a_warehouse_code_is_required(
        self, customer: APIClient, staff: APIClient, order: Order, warehouse: str
    ) -> None:
        return_id = requested(customer, order)

        lines = [{"product_id": 1, "restocked": 1, "damaged": 0}]
        response = receive(staff, return_id, lines, warehouse=warehouse)

        assert response.status_code == 400
        assert "warehouse" in response.json()["errors"]
        assert Return.objects.get(pk=return_id).status == ReturnStatus.REQUESTED

    def test_only_staff_receive(self, customer: APIClient, order: Order) -> None:
        return_id = requested(customer, order)
        lines = [{"product_id": 1, "restocked": 1, "damaged": 0}]

        assert receive(customer, return_id, lines).status_code == 403
        assert receive(APIClient(), return_id, lines).status_code == 401
        assert Return.objects.get(pk=return_id).status == ReturnStatus.REQUESTED

    def test_an_unknown_return_is_not_found(self, staff: APIClient) -> None:
        lines = [{"product_id": 1, "restocked": 1, "damaged": 0}]
        assert receive(staff, 12345, lines).status_code == 404
        assert receive(staff, 2**63, lines).status_code == 404


class TestReading:
    def test_the_owner_and_staff_read_a_return_others_do_not(
        self,
        customer: APIClient,
        other_customer: APIClient,
        staff: APIClient,
        order: Order,
    ) -> None:
        return_id = requested(customer, order)

        for client in (customer, staff):
            response = client.get(f"/api/returns/{return_id}/")
            assert response.status_code == 200
            assert response.json()["id"] == return_id
        assert other_customer.get(f"/api/returns/{return_id}/").status_code == 404
        assert APIClient().get(f"/api/returns/{return_id}/").status_code == 401

    def test_staff_list_the_returns_to_receive_newest_first(
        self, customer: APIClient, staff: APIClient, order: Order
    ) -> None:
        first = requested(customer, order, product_id=1, quantity=1)
        second = requested(customer, order, product_id=1, quantity=1)
        third = requested(customer, order, product_id=2, quantity=1)
        receive(staff, second, [{"product_id": 1, "restocked": 1, "damaged": 0}])

        everything = staff.get("/api/returns/").json()
        assert [r["id"] for r in everything["results"]] == [third, second, first]
        assert everything["count"] == 3

        seen, url = [], "/api/returns/?status=REQUESTED&page_size=1"
        while url:
            page = staff.get(url).json()
            seen += [(r["id"], r["status"]) for r in page["results"]]
            url = page["next"]
        assert seen == [(third, "REQUESTED"), (first, "REQUESTED")]

    def test_the_list_is_staffs_and_its_errors_are_the_order_lists(
        self, customer: APIClient, staff: APIClient
    ) -> None:
        assert customer.get("/api/returns/").status_code == 403
        bad_status = staff.get("/api/returns/?status=LOST")
        assert bad_status.status_code == 400
        assert bad_status.json()["code"] == "invalid"
        bad_cursor = staff.get("/api/returns/?cursor=nonsense")
        assert bad_cursor.status_code == 404
        assert bad_cursor.json() == {"detail": "Invalid cursor.", "code": "not_found"}


class TestConstraints:
    def test_the_database_refuses_more_returned_than_shipped(self, order: Order) -> None:
        from django.db import IntegrityError

        with pytest.raises(IntegrityError), transaction.atomic():
            OrderLine.objects.filter(order=order, product_id=1).update(returned_quantity=4)

    def test_the_database_refuses_more_received_than_requested(
        self, customer: APIClient, order: Order
    ) -> None:
        from django.db import IntegrityError

        return_id = requested(customer, order, quantity=2)
        with pytest.raises(IntegrityError), transaction.atomic():
            ReturnLine.objects.filter(return_request_id=return_id).update(restocked=2, damaged=1)

    def test_the_database_refuses_a_received_return_without_its_refund(
        self, customer: APIClient, order: Order
    ) -> None:
        from django.db import IntegrityError

        return_id = requested(customer, order)
        with pytest.raises(IntegrityError), transaction.atomic():
            Return.objects.filter(pk=return_id).update(status=ReturnStatus.RECEIVED)


@pytest.mark.django_db(transaction=True)
def test_two_returns_racing_for_the_last_units_return_them_once(
    client_for: Any, products: dict
) -> None:
    order = confirmed("race")
    shipments.order_ship_from(order_id=order.id, warehouse="wh-east")
    answers: list[int] = []
    barrier = threading.Barrier(2)

    def request() -> None:
        try:
            barrier.wait(timeout=10)
            client = client_for(CUSTOMER_ID)
            answers.append(
                request_return(client, order, [{"product_id": 1, "quantity": 3}]).status_code
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(answers) == [201, 400]
    assert Return.objects.filter(order=order).count() == 1
    assert sum(ReturnLine.objects.filter(return_request__order=order).values_list(
        "quantity", flat=True
    )) == 3  # fmt: skip
    assert len(outbox("return.requested")) == 1
