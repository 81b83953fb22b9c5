"""The rows a placed order is stored as: PostgreSQL's written-out statements store what the
ORM way (SQLite's, run here by making the connection look like another database) stores."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from orders import persistence, placement, services
from orders.models import Order, OrderLine, OrderStatusChange
from product_replica import persistence as replica_persistence
from product_replica.selectors import ReplicaPrice, product_replicas_by_id
from tests.factories import CUSTOMER_ID

URL = "/api/orders/"
LINES = [{"product_id": 2, "quantity": 3}, {"product_id": 1, "quantity": 2}]
DEADLINE = timedelta(seconds=900)  # ORDER_PENDING_DEADLINE_SECONDS in the test settings
pytestmark = pytest.mark.django_db


def place(client: APIClient, key: str, lines: list[dict[str, int]] = LINES) -> Any:
    return client.post(URL, {"lines": lines}, format="json", HTTP_IDEMPOTENCY_KEY=key)


def take_the_orm_way(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, take the way of a database other than PostgreSQL (SQLite's)."""
    monkeypatch.setattr(connection, "vendor", "sqlite")

    def written_out(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the written-out statements were used")

    monkeypatch.setattr(persistence, "_order_insert_priced_sql", written_out)
    monkeypatch.setattr(persistence, "_order_detail_sql", written_out)
    monkeypatch.setattr(replica_persistence, "_prices_sql", written_out)


@pytest.fixture
def orm_path(monkeypatch: pytest.MonkeyPatch) -> None:
    take_the_orm_way(monkeypatch)


def rows(order_id: str) -> dict[str, Any]:
    """Every stored value of an order, its lines (by id) and its history (by id)."""
    return {
        "order": Order.objects.values().get(pk=order_id),
        "lines": list(OrderLine.objects.filter(order_id=order_id).order_by("id").values()),
        "history": list(
            OrderStatusChange.objects.filter(order_id=order_id).order_by("id").values()
        ),
    }


def without(values: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: value for name, value in values.items() if name not in names}


class TestStoredRows:
    def test_every_value_of_the_order_its_lines_and_its_history(
        self, customer: APIClient, products: dict
    ) -> None:
        before = timezone.now()
        order_id = place(customer, "rows").json()["id"]
        after = timezone.now()

        stored = rows(order_id)
        placed_at = stored["order"]["created_at"]
        assert before <= placed_at <= after
        assert stored["order"] == {
            "id": uuid.UUID(order_id),
            "user_id": CUSTOMER_ID,
            "status": "PENDING",
            "total": Decimal("34.75"),  # 3 x 3.25 + 2 x 12.50
            "refunded_total": Decimal("0.00"),  # nothing returned
            "rejection_reason": "",
            "rejected_lines": [],
            "cancellation_reason": "",
            "idempotency_key": "rows",
            "request_fingerprint": services.request_fingerprint(
                [services.LineRequest(1, 2), services.LineRequest(2, 3)]
            ),
            "created_at": placed_at,
            "updated_at": placed_at,
            "deadline": placed_at + DEADLINE,
        }
        # Nothing of a new order has shipped, been cancelled or come back.
        line = {
            "order_id": uuid.UUID(order_id),
            "shipped_quantity": 0,
            "cancelled_quantity": 0,
            "returned_quantity": 0,
        }
        assert [without(x, "id") for x in stored["lines"]] == [  # in the request's order
            {
                **line,
                "product_id": 2,
                "sku": "SKU-2",
                "name": "Product 2",
                "unit_price": Decimal("3.25"),
                "quantity": 3,
                "line_total": Decimal("9.75"),
            },
            {
                **line,
                "product_id": 1,
                "sku": "SKU-1",
                "name": "Product 1",
                "unit_price": Decimal("12.50"),
                "quantity": 2,
                "line_total": Decimal("25.00"),
            },
        ]
        assert [without(x, "id") for x in stored["history"]] == [
            {
                "order_id": uuid.UUID(order_id),
                "from_status": "",
                "to_status": "PENDING",
                "reason": "placed",
                "at": placed_at,
                "caused_by_message_id": None,
                "actor_user_id": CUSTOMER_ID,
            }
        ]

    def test_names_and_prices_are_stored_exactly_as_the_replica_has_them(
        self, customer: APIClient, make_product: Any
    ) -> None:
        from product_replica.models import ProductReplica

        make_product(7, price="99999.99")
        name = 'Crème "brûlée" \\ 10% — 東京 \u2028'  # quotes, a backslash, non-ASCII, a separator
        ProductReplica.objects.filter(pk=7).update(name=name, sku='SKU-"7"')
        order_id = place(customer, "exact", [{"product_id": 7, "quantity": 3}]).json()["id"]

        [line] = rows(order_id)["lines"]
        assert (line["name"], line["sku"]) == (name, 'SKU-"7"')
        assert (line["unit_price"], line["line_total"]) == (
            Decimal("99999.99"),
            Decimal("299999.97"),
        )

    def test_are_what_the_orm_way_stores(
        self, customer: APIClient, products: dict, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        written_out = rows(place(customer, "postgresql").json()["id"])
        take_the_orm_way(monkeypatch)
        by_the_orm = rows(place(customer, "orm").json()["id"])

        # The same values but for the ids, the key and the clock.
        clock = ("created_at", "updated_at", "deadline")
        assert without(written_out["order"], "id", "idempotency_key", *clock) == without(
            by_the_orm["order"], "id", "idempotency_key", *clock
        )
        assert [without(x, "id", "order_id") for x in written_out["lines"]] == [
            without(x, "id", "order_id") for x in by_the_orm["lines"]
        ]
        assert [without(x, "id", "order_id", "at") for x in written_out["history"]] == [
            without(x, "id", "order_id", "at") for x in by_the_orm["history"]
        ]
        for stored in (written_out, by_the_orm):
            order = stored["order"]
            assert abs(order["deadline"] - order["created_at"] - DEADLINE) < timedelta(seconds=1)
            assert order["created_at"] <= order["updated_at"] <= stored["history"][0]["at"]

    def test_a_replayed_key_writes_no_line_or_history(
        self, customer: APIClient, products: dict
    ) -> None:
        place(customer, "twice")

        assert place(customer, "twice").status_code == 200

        assert (Order.objects.count(), OrderLine.objects.count()) == (1, 2)
        assert OrderStatusChange.objects.count() == 1


class TestTheAnswer:
    @pytest.mark.usefixtures("orm_path")
    def test_the_orm_way_answers_what_reading_the_order_back_shows(
        self, customer: APIClient, products: dict
    ) -> None:
        placed = place(customer, "orm")

        assert placed.status_code == 202
        assert placed.content == customer.get(placed["Location"]).content

    def test_times_in_whole_seconds_show_as_a_read_back_does(
        self, customer: APIClient, products: dict, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # No microseconds: isoformat() leaves them out, on both ways of showing an order.
        now = datetime.now(UTC).replace(microsecond=0)
        monkeypatch.setattr(placement, "timezone", SimpleNamespace(now=lambda: now))

        placed = place(customer, "whole")

        assert placed.json()["created_at"] == now.isoformat().replace("+00:00", "Z")
        assert placed.content == customer.get(placed["Location"]).content


class TestReplicaPrices:
    def test_what_pricing_needs_of_the_products_that_exist(self, products: dict) -> None:
        found = product_replicas_by_id(product_ids=[1, 3, 404])

        assert found == {
            1: ReplicaPrice(1, "SKU-1", "Product 1", Decimal("12.50"), True),
            3: ReplicaPrice(3, "SKU-3", "Product 3", Decimal("1.00"), False),
        }
        assert product_replicas_by_id(product_ids=[]) == {}

    @pytest.mark.usefixtures("orm_path")
    def test_the_orm_way_reads_the_same(self, products: dict) -> None:
        assert product_replicas_by_id(product_ids=[1, 3, 404]) == {
            1: ReplicaPrice(1, "SKU-1", "Product 1", Decimal("12.50"), True),
            3: ReplicaPrice(3, "SKU-3", "Product 3", Decimal("1.00"), False),
        }
