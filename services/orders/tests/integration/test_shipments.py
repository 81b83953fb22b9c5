"""Shipping an order in parts, from one warehouse at a time (POST /api/orders/{id}/shipments/),
or whole (POST /api/orders/{id}/ship/), and cancelling what is left."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from django.db import connection, transaction
from rest_framework.test import APIClient

from orders import services
from orders.handlers import HANDLERS
from orders.models import Order, OrderAllocation, OrderLine, OrderStatus, Shipment, ShipmentLine
from tests.factories import CUSTOMER_ID, outbox, stock_event

pytestmark = pytest.mark.django_db

# Five units of product 1 (three in wh-east, two in wh-west), two of product 2 (wh-east).
LINES = [services.LineRequest(1, 5), services.LineRequest(2, 2)]
ALLOCATIONS = [
    {"product_id": 1, "warehouse": "wh-east", "quantity": 3},
    {"product_id": 1, "warehouse": "wh-west", "quantity": 2},
    {"product_id": 2, "warehouse": "wh-east", "quantity": 2},
]


@pytest.fixture
def latest(settings: Any) -> None:
    """Every service runs this release: the newest versions are published."""
    settings.MESSAGING_EVENT_VERSIONS = "latest"


def place(key: str = "k", lines: list[services.LineRequest] = LINES) -> Order:
    return services.order_place(user_id=CUSTOMER_ID, idempotency_key=key, lines=lines).order


def reserve(order: Order, allocations: list[dict[str, Any]] | None = ALLOCATIONS) -> None:
    """stock.reserved as inventory sends it: version 2 with ``allocations``, or version 1
    (None: an older inventory, which does not say where the units are)."""
    lines = [{"product_id": x.product_id, "quantity": x.quantity} for x in order.lines.all()]
    event = stock_event("stock.reserved", order.id, lines=lines, allocations=allocations or [])
    if allocations is None:
        event = stock_event("stock.reserved", order.id, lines=lines, version=1)
    with transaction.atomic():
        HANDLERS["stock.reserved"](event)


@pytest.fixture
def order(products: dict) -> Order:
    confirmed = place()
    reserve(confirmed)
    return confirmed


@pytest.fixture
def unallocated_order(products: dict) -> Order:
    """Confirmed by an older inventory (stock.reserved v1): where its units are is unknown."""
    confirmed = place("v1")
    reserve(confirmed, None)
    return confirmed


def ship(client: APIClient, order: Order, warehouse: str, lines: list | None = None) -> Any:
    payload: dict[str, Any] = {"warehouse": warehouse}
    if lines is not None:
        payload["lines"] = lines
    return client.post(f"/api/orders/{order.id}/shipments/", payload, format="json")


def shipped(client: APIClient, order: Order, warehouse: str, units: int | None = None) -> Any:
    """A shipment that must be accepted: ``units`` of product 1 from ``warehouse`` (None:
    everything left there); the shipment as answered."""
    lines = None if units is None else [{"product_id": 1, "quantity": units}]
    response = ship(client, order, warehouse, lines)
    assert response.status_code == 201, response.content
    return response.json()


def detail(client: APIClient, order: Order) -> dict[str, Any]:
    response = client.get(f"/api/orders/{order.id}/")
    assert response.status_code == 200
    return response.json()


def quantities(body: dict[str, Any]) -> dict[int, tuple[int, int, int]]:
    """(ordered, shipped, cancelled) by product, as the detail shows them."""
    return {
        line["product_id"]: (line["quantity"], line["shipped_quantity"], line["cancelled_quantity"])
        for line in body["lines"]
    }


def allocations(body: dict[str, Any]) -> list[tuple[int, str, int, int]]:
    return [
        (a["product_id"], a["warehouse"], a["quantity"], a["shipped_quantity"])
        for a in body["allocations"]
    ]


def nothing_shipped(order: Order) -> None:
    assert not Shipment.objects.filter(order=order).exists()
    assert outbox("order.shipped") == []
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CONFIRMED
    assert set(
        OrderLine.objects.filter(order=order).values_list("shipped_quantity", flat=True)
    ) == {0}


@pytest.mark.usefixtures("latest")
class TestInParts:
    def test_the_history_counts_one_unit_as_one(
        self, staff: APIClient, customer: APIClient, order: Order
    ) -> None:
        shipment = shipped(staff, order, "wh-east", 1)

        reason = detail(customer, order)["history"][-1]["reason"]
        assert reason == f"shipment {shipment['id']} from wh-east: 1 unit"

    def test_three_of_five_from_one_warehouse_then_two_from_another(
        self, staff: APIClient, customer: APIClient, order: Order
    ) -> None:
        first = shipped(staff, order, "wh-east", 3)

        assert first["warehouse"] == "wh-east"
        assert first["lines"] == [{"product_id": 1, "quantity": 3}]
        body = detail(customer, order)
        assert body["status"] == "PARTIALLY_SHIPPED"
        assert quantities(body) == {1: (5, 3, 0), 2: (2, 0, 0)}
        assert allocations(body) == [
            (1, "wh-east", 3, 3),
            (1, "wh-west", 2, 0),
            (2, "wh-east", 2, 0),
        ]
        assert body["shipments"] == [first]
        assert body["history"][-1]["from_status"] == "CONFIRMED"
        assert body["history"][-1]["to_status"] == "PARTIALLY_SHIPPED"
        assert body["history"][-1]["reason"] == f"shipment {first['id']} from wh-east: 3 units"

        second = shipped(staff, order, "wh-west")  # lines omitted: all that is left there

        assert second["lines"] == [{"product_id": 1, "quantity": 2}]
        body = detail(customer, order)
        assert body["status"] == "PARTIALLY_SHIPPED"  # product 2 is still in wh-east
        assert quantities(body) == {1: (5, 5, 0), 2: (2, 0, 0)}
        assert (body["history"][-1]["from_status"], body["history"][-1]["to_status"]) == (
            "PARTIALLY_SHIPPED",
            "PARTIALLY_SHIPPED",
        )
        assert body["history"][-1]["reason"] == f"shipment {second['id']} from wh-west: 2 units"

        third = shipped(staff, order, "wh-east")

        body = detail(customer, order)
        assert body["status"] == "SHIPPED"
        assert quantities(body) == {1: (5, 5, 0), 2: (2, 2, 0)}
        assert [s["id"] for s in body["shipments"]] == [
            first["id"],
            second["id"],
            third["id"],
        ]
        assert body["history"][-1]["to_status"] == "SHIPPED"

        events = outbox("order.shipped")
        assert [event.version for event in events] == [2, 2, 2]
        common = {"order_id": str(order.id), "user_id": CUSTOMER_ID}
        assert [event.data for event in events] == [
            {
                **common,
                "shipment_id": first["id"],
                "warehouse": "wh-east",
                "lines": [{"product_id": 1, "quantity": 3}],
                "complete": False,
            },
            {
                **common,
                "shipment_id": second["id"],
                "warehouse": "wh-west",
                "lines": [{"product_id": 1, "quantity": 2}],
                "complete": False,
            },
            {
                **common,
                "shipment_id": third["id"],
                "warehouse": "wh-east",
                "lines": [{"product_id": 2, "quantity": 2}],
                "complete": True,
            },
        ]
        assert all(event.correlation_id == str(order.id) for event in events)

    def test_the_shipments_are_listed_for_the_owner_and_staff(
        self, staff: APIClient, customer: APIClient, other_customer: APIClient, order: Order
    ) -> None:
        shipment = shipped(staff, order, "wh-west")

        for client in (staff, customer):
            response = client.get(f"/api/orders/{order.id}/shipments/")
            assert response.status_code == 200
            assert response.json() == [shipment]
        assert other_customer.get(f"/api/orders/{order.id}/shipments/").status_code == 404
        assert APIClient().get(f"/api/orders/{order.id}/shipments/").status_code == 401

    def test_only_staff_ship(self, customer: APIClient, order: Order) -> None:
        assert ship(customer, order, "wh-east").status_code == 403
        assert ship(APIClient(), order, "wh-east").status_code == 401
        nothing_shipped(order)

    def test_more_than_allocated_there_is_refused(self, staff: APIClient, order: Order) -> None:
        response = ship(staff, order, "wh-west", [{"product_id": 1, "quantity": 3}])

        assert response.status_code == 400
        error = response.json()
        assert error["code"] == "invalid"
        assert "3 units of product 1 asked for, 2 allocated" in error["errors"]["lines"][0]
        nothing_shipped(order)

    def test_more_than_is_left_after_a_shipment_is_refused(
        self, staff: APIClient, order: Order
    ) -> None:
        shipped(staff, order, "wh-east", 2)

        response = ship(staff, order, "wh-east", [{"product_id": 1, "quantity": 2}])

        assert response.status_code == 400
        assert "1 allocated in this warehouse" in response.json()["errors"]["lines"][0]
        assert (
            OrderAllocation.objects.get(
                order=order, warehouse="wh-east", product_id=1
            ).shipped_quantity
            == 2
        )

    @pytest.mark.parametrize("warehouse", ["wh-north", "WH-EAST"])
    def test_a_warehouse_holding_nothing_of_the_order_is_refused(
        self, staff: APIClient, order: Order, warehouse: str
    ) -> None:
        response = ship(staff, order, warehouse)

        assert response.status_code == 400
        assert "Nothing of this order is left to ship" in response.json()["errors"]["warehouse"][0]
        nothing_shipped(order)

    def test_a_warehouse_with_nothing_left_is_refused(self, staff: APIClient, order: Order) -> None:
        shipped(staff, order, "wh-west")

        response = ship(staff, order, "wh-west")

        assert response.status_code == 400
        assert "warehouse" in response.json()["errors"]
        assert Shipment.objects.filter(order=order).count() == 1

    @pytest.mark.parametrize(
        ("lines", "says"),
        [
            ([{"product_id": 3, "quantity": 1}], "product 3 is not in this order"),
            (
                [{"product_id": 1, "quantity": 1}, {"product_id": 1, "quantity": 1}],
                "product 1 appears twice",
            ),
            ([{"product_id": 2, "quantity": 1}, {"product_id": 1, "quantity": 4}], "lines[1]"),
        ],
    )
    def test_lines_that_cannot_ship_are_refused_naming_the_field(
        self, staff: APIClient, order: Order, lines: list, says: str
    ) -> None:
        response = ship(staff, order, "wh-east", lines)

        assert response.status_code == 400
        assert says in response.json()["errors"]["lines"][0]
        nothing_shipped(order)

    @pytest.mark.parametrize(
        "payload",
        [
            {"warehouse": "wh-east", "lines": [{"product_id": 1, "quantity": 0}]},
            {"warehouse": "wh-east", "lines": [{"product_id": 1, "quantity": "1"}]},
            {"warehouse": "wh-east", "lines": []},
            {"lines": [{"product_id": 1, "quantity": 1}]},
            {"warehouse": "x" * 33},
        ],
    )
    def test_a_malformed_request_is_refused(
        self, staff: APIClient, order: Order, payload: dict
    ) -> None:
        response = staff.post(f"/api/orders/{order.id}/shipments/", payload, format="json")

        assert response.status_code == 400
        assert response.json()["code"] == "invalid"
        assert set(response.json()["errors"]) <= {"warehouse", "lines"}
        nothing_shipped(order)

    @pytest.mark.parametrize(
        "status", [OrderStatus.PENDING, OrderStatus.SHIPPED, OrderStatus.CANCELLED]
    )
    def test_only_a_confirmed_or_partially_shipped_order_ships(
        self, staff: APIClient, order: Order, status: str
    ) -> None:
        Order.objects.filter(pk=order.pk).update(status=status)

        response = ship(staff, order, "wh-east")

        assert response.status_code == 409
        assert response.json()["code"] == "order_not_shippable"
        assert outbox("order.shipped") == []

    def test_an_unknown_allocation_is_refused_pointing_to_ship(
        self, staff: APIClient, unallocated_order: Order
    ) -> None:
        order = unallocated_order
        assert Order.objects.get(pk=order.pk).status == OrderStatus.CONFIRMED

        response = ship(staff, order, "wh-east")

        assert response.status_code == 409
        assert response.json()["code"] == "allocation_unknown"
        assert "/ship/" in response.json()["detail"]
        nothing_shipped(order)

    def test_a_missing_order_is_404(self, staff: APIClient) -> None:
        missing = Order(id=uuid.uuid4())
        assert ship(staff, missing, "wh-east").status_code == 404


@pytest.mark.usefixtures("latest")
class TestCancellingWhatIsLeft:
    def test_after_the_first_part_the_rest_is_cancelled_and_the_order_ends_shipped(
        self, staff: APIClient, customer: APIClient, order: Order
    ) -> None:
        shipped(staff, order, "wh-east", 3)

        response = customer.post(f"/api/orders/{order.id}/cancel/")

        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "SHIPPED"
        assert quantities(body) == {1: (5, 3, 2), 2: (2, 0, 2)}
        assert body["cancellation_reason"] == "cancelled by the customer"
        last = body["history"][-1]
        assert (last["from_status"], last["to_status"]) == ("PARTIALLY_SHIPPED", "SHIPPED")
        assert "the units not shipped yet were cancelled" in last["reason"]
        [cancelled] = outbox("order.cancelled")
        assert cancelled.data == {
            "order_id": str(order.id),
            "user_id": CUSTOMER_ID,
            "reason": "cancelled by the customer",
        }
        # Nothing ships any more, and a second cancel is refused.
        assert ship(staff, order, "wh-west").status_code == 409
        assert customer.post(f"/api/orders/{order.id}/cancel/").status_code == 409

    def test_a_cancelled_order_counts_every_unit_cancelled(
        self, customer: APIClient, order: Order
    ) -> None:
        body = customer.post(f"/api/orders/{order.id}/cancel/").json()

        assert body["status"] == "CANCELLED"
        assert quantities(body) == {1: (5, 0, 5), 2: (2, 0, 2)}

    def test_a_late_stock_event_leaves_a_partially_shipped_order_as_it_is(
        self, staff: APIClient, order: Order
    ) -> None:
        shipped(staff, order, "wh-west")
        reserve(order)  # redelivered under another message id
        with transaction.atomic():
            HANDLERS["stock.released"](stock_event("stock.released", order.id, reason="late"))
        with transaction.atomic():
            HANDLERS["stock.rejected"](
                stock_event("stock.rejected", order.id, reason="late", lines=[])
            )

        stored = Order.objects.get(pk=order.pk)
        assert stored.status == OrderStatus.PARTIALLY_SHIPPED
        assert OrderAllocation.objects.filter(order=order).count() == 3
        assert outbox("order.cancelled") == []


@pytest.mark.usefixtures("latest")
class TestShippingWhatRemains:
    def test_after_a_partial_shipment_the_rest_ships_per_warehouse(
        self, staff: APIClient, order: Order
    ) -> None:
        shipped(staff, order, "wh-east", 1)

        response = staff.post(f"/api/orders/{order.id}/ship/")

        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "SHIPPED"
        assert quantities(body) == {1: (5, 5, 0), 2: (2, 2, 0)}
        assert [(a[2], a[3]) for a in allocations(body)] == [(3, 3), (2, 2), (2, 2)]
        assert [(s["warehouse"], s["lines"]) for s in body["shipments"]] == [
            ("wh-east", [{"product_id": 1, "quantity": 1}]),
            ("wh-east", [{"product_id": 1, "quantity": 2}, {"product_id": 2, "quantity": 2}]),
            ("wh-west", [{"product_id": 1, "quantity": 2}]),
        ]
        events = outbox("order.shipped")
        assert [(e.data["warehouse"], e.data["complete"]) for e in events] == [
            ("wh-east", False),
            ("wh-east", False),
            ("wh-west", True),
        ]
        assert [e.data["shipment_id"] for e in events] == [s["id"] for s in body["shipments"]]

    def test_an_unknown_allocation_ships_whole_from_no_named_warehouse(
        self, staff: APIClient, unallocated_order: Order
    ) -> None:
        order = unallocated_order

        body = staff.post(f"/api/orders/{order.id}/ship/").json()

        assert body["status"] == "SHIPPED"
        [shipment] = body["shipments"]
        assert shipment["warehouse"] is None
        [event] = outbox("order.shipped")
        assert event.data == {
            "order_id": str(order.id),
            "user_id": CUSTOMER_ID,
            "shipment_id": shipment["id"],
            "warehouse": None,
            "lines": [{"product_id": 1, "quantity": 5}, {"product_id": 2, "quantity": 2}],
            "complete": True,
        }
        assert body["history"][-1]["reason"] == f"shipment {shipment['id']}: 7 units"


class TestWhileVersionOneIsPublished:
    """MESSAGING_EVENT_VERSIONS empty: some consumers may still read order.shipped v1 only."""

    def test_a_partial_shipment_is_refused_with_what_to_do(
        self, staff: APIClient, order: Order
    ) -> None:
        response = ship(staff, order, "wh-east")

        assert response.status_code == 409
        assert response.json()["code"] == "event_version_too_old"
        assert "MESSAGING_EVENT_VERSIONS" in response.json()["detail"]
        assert "every service must run the new release" in response.json()["detail"]
        nothing_shipped(order)

    def test_the_whole_order_still_ships_and_says_so_in_version_one(
        self, staff: APIClient, order: Order
    ) -> None:
        response = staff.post(f"/api/orders/{order.id}/ship/")

        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "SHIPPED"
        assert quantities(body) == {1: (5, 5, 0), 2: (2, 2, 0)}
        assert [(a[2], a[3]) for a in allocations(body)] == [(3, 3), (2, 2), (2, 2)]
        [shipment] = body["shipments"]
        assert shipment["warehouse"] is None
        [event] = outbox("order.shipped")
        assert event.version == 1
        assert event.data == {"order_id": str(order.id), "user_id": CUSTOMER_ID}

    def test_the_rest_of_a_partly_shipped_order_cannot_say_it_in_version_one(
        self, staff: APIClient, order: Order, settings: Any
    ) -> None:
        settings.MESSAGING_EVENT_VERSIONS = "latest"
        shipped(staff, order, "wh-west")
        settings.MESSAGING_EVENT_VERSIONS = ""  # told otherwise again

        response = staff.post(f"/api/orders/{order.id}/ship/")

        assert response.status_code == 409
        assert response.json()["code"] == "event_version_too_old"
        assert Order.objects.get(pk=order.pk).status == OrderStatus.PARTIALLY_SHIPPED
        assert len(outbox("order.shipped")) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("latest")
def test_two_requests_for_the_same_units_never_ship_more_than_allocated(
    client_for: Any, order: Order
) -> None:
    answers: list[int] = []
    barrier = threading.Barrier(4)

    def request() -> None:
        try:
            barrier.wait(timeout=10)
            staff = client_for(99, is_staff=True)
            answers.append(
                ship(staff, order, "wh-east", [{"product_id": 1, "quantity": 2}]).status_code
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(answers) == [201, 400, 400, 400]
    assert (
        sum(ShipmentLine.objects.filter(shipment__order=order).values_list("quantity", flat=True))
        == 2
    )
    allocation = OrderAllocation.objects.get(order=order, product_id=1, warehouse="wh-east")
    assert allocation.shipped_quantity == 2
    assert OrderLine.objects.get(order=order, product_id=1).shipped_quantity == 2
    assert len(outbox("order.shipped")) == 1
