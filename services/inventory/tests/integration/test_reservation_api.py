"""``GET /api/reservations/``: the inventory side of the saga for staff (the cross-service
audit), by status and by order, newest first, a page at a time."""

import uuid

import pytest

from stock.handlers import on_order_created
from stock.models import Reservation
from tests import factories

pytestmark = pytest.mark.django_db

URL = "/api/reservations/"


def order(lines):
    envelope = factories.order_created(lines)
    on_order_created(envelope)
    return envelope.data["order_id"]


def test_staff_list_reservations_by_status_and_by_order(staff_client, make_product):
    hammer = make_product(on_hand=5)
    saw = make_product(on_hand=0)
    reserved = order([(hammer.pk, 2)])
    rejected = order([(saw.pk, 1)])

    every = staff_client.get(URL).json()
    assert [r["order_id"] for r in every["results"]] == [rejected, reserved]  # newest first
    active = staff_client.get(URL, {"status": ["RESERVED", "BACKORDERED"]}).json()["results"]
    assert [r["order_id"] for r in active] == [reserved]
    assert active[0]["lines"] == [{"product_id": hammer.pk, "quantity": 2}]
    [entry] = active[0]["allocations"]
    assert (entry["product_id"], entry["quantity"], entry["shipped"]) == (hammer.pk, 2, 0)
    by_order = staff_client.get(URL, {"order_id": [rejected, str(uuid.uuid4())]}).json()
    assert [(r["order_id"], r["status"]) for r in by_order["results"]] == [
        (rejected, Reservation.Status.REJECTED)
    ]


def test_pages_follow_one_another(staff_client, make_product):
    hammer = make_product(on_hand=10)
    placed = [order([(hammer.pk, 1)]) for _ in range(3)]
    first = staff_client.get(URL, {"page_size": 2}).json()
    second = staff_client.get(first["next"]).json()
    seen = [r["order_id"] for r in first["results"] + second["results"]]
    assert seen == list(reversed(placed))
    assert second["next"] is None


def test_bad_filters_are_a_400_and_customers_a_403(staff_client, customer_client):
    response = staff_client.get(URL, {"status": "LOST"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    too_many = [str(uuid.uuid4()) for _ in range(101)]
    assert staff_client.get(URL, {"order_id": too_many}).status_code == 400
    assert staff_client.get(URL, {"order_id": "not-a-uuid"}).status_code == 400
    assert customer_client.get(URL).status_code == 403
