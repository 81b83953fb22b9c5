"""POST /api/orders/: priced from the replica, idempotent, validated, one transaction."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from messaging import after_commit
from messaging import outbox as outbox_module
from messaging.models import OutboxMessage
from orders import persistence, placement, services
from orders.models import Order, OrderLine, OrderStatusChange
from tests.factories import CUSTOMER_ID, outbox

URL = "/api/orders/"
pytestmark = pytest.mark.django_db


def place(client: APIClient, payload: Any, key: str | None = "key-1") -> Any:
    headers: dict[str, Any] = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(URL, payload, format="json", **headers)


ONE_OF_EACH = {"lines": [{"product_id": 1, "quantity": 2}, {"product_id": 2, "quantity": 1}]}


class TestPlacing:
    def test_answers_202_with_a_pending_order_priced_from_the_replica(
        self, customer: APIClient, products: dict
    ) -> None:
        response = place(customer, ONE_OF_EACH)

        assert response.status_code == 202
        data = response.json()
        assert data["status"] == "PENDING"
        assert data["user_id"] == CUSTOMER_ID
        assert data["total"] == "28.25"  # 2 x 12.50 + 1 x 3.25
        assert [(x["product_id"], x["unit_price"], x["line_total"]) for x in data["lines"]] == [
            (1, "12.50", "25.00"),
            (2, "3.25", "3.25"),
        ]
        assert data["lines"][0]["sku"] == "SKU-1"
        assert [h["to_status"] for h in data["history"]] == ["PENDING"]
        assert response["Location"] == f"/api/orders/{data['id']}/"
        order = Order.objects.get(pk=data["id"])
        assert order.total == Decimal("28.25")
        assert order.deadline > order.created_at

    def test_writes_a_valid_order_created_event(self, customer: APIClient, products: dict) -> None:
        order_id = place(customer, ONE_OF_EACH).json()["id"]

        [event] = outbox()
        assert event.type == "order.created"
        assert event.source == "orders"
        assert event.correlation_id == order_id
        assert event.data == {
            "order_id": order_id,
            "user_id": CUSTOMER_ID,
            "lines": [{"product_id": 1, "quantity": 2}, {"product_id": 2, "quantity": 1}],
        }

    def test_ignores_price_status_and_owner_sent_by_the_client(
        self, customer: APIClient, products: dict
    ) -> None:
        payload = {
            "lines": [{"product_id": 1, "quantity": 1, "unit_price": "0.01", "price": "0.01"}],
            "status": "SHIPPED",
            "user_id": 777,
            "total": "0.01",
            "id": str(uuid.uuid4()),
        }

        data = place(customer, payload).json()

        assert data["status"] == "PENDING"
        assert data["user_id"] == CUSTOMER_ID
        assert data["total"] == "12.50"
        assert data["lines"][0]["unit_price"] == "12.50"
        assert data["id"] != payload["id"]

    def test_order_and_event_are_one_transaction(
        self, customer: APIClient, products: dict, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Inside a caller's transaction (this test's): a savepoint of it.
        assert_order_and_event_are_all_or_nothing(customer, monkeypatch)

    def test_query_count_is_pinned(
        self, customer: APIClient, products: dict, django_assert_num_queries: Any
    ) -> None:
        # savepoint, the order priced from the replica with its lines, its history and its
        # event (one statement), release savepoint. No read of the prices first (the statement
        # prices the lines), no idempotency-key lookup (the unique constraint decides), no
        # read-back (the response is built from the values just written) and no NOTIFY (the
        # worker publishes the event itself after the commit).
        with django_assert_num_queries(3):
            response = place(customer, ONE_OF_EACH)
        assert response.status_code == 202

    def test_the_answer_is_what_reading_the_order_back_shows(
        self, customer: APIClient, products: dict
    ) -> None:
        placed = place(customer, ONE_OF_EACH)

        shown = customer.get(placed["Location"])

        assert shown.status_code == 200
        assert placed.content == shown.content  # byte for byte


def clash_with_an_existing_event(monkeypatch: pytest.MonkeyPatch) -> OutboxMessage:
    """From now on, a new order's event takes the message id of an event already stored."""
    taken = OutboxMessage.objects.create(message_id=uuid.uuid4(), body="{}", correlation_id="x")
    real = outbox_module.event_row

    def clashing(*args: Any, **kwargs: Any) -> OutboxMessage:
        row = real(*args, **kwargs)
        row.message_id = taken.message_id  # the event's row meets the outbox's unique key
        return row

    monkeypatch.setattr(outbox_module, "event_row", clashing)
    return taken


def assert_order_and_event_are_all_or_nothing(
    customer: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event that cannot be stored leaves no order, no line and no history behind."""
    taken = clash_with_an_existing_event(monkeypatch)

    with pytest.raises(IntegrityError):
        place(customer, ONE_OF_EACH)  # the test client re-raises the view's exception

    assert Order.objects.count() == 0
    assert OrderLine.objects.count() == 0
    assert OrderStatusChange.objects.count() == 0
    assert list(OutboxMessage.objects.values_list("message_id", flat=True)) == [taken.message_id]


@pytest.mark.django_db(transaction=True)
class TestOneStatement:
    """As in production: no transaction open around the request."""

    def test_order_and_event_are_one_transaction(
        self, customer: APIClient, products: dict, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert_order_and_event_are_all_or_nothing(customer, monkeypatch)

    def test_a_new_order_is_one_statement_without_begin_or_commit(
        self, customer: APIClient, products: dict
    ) -> None:
        with CaptureQueriesContext(connection) as queries:
            response = place(customer, ONE_OF_EACH)
        assert response.status_code == 202
        statements = [query["sql"] for query in queries]
        # the order priced from the replica, its lines, its history and its event
        assert len(statements) == 1, statements
        assert not any(sql in {"BEGIN", "COMMIT"} for sql in statements), statements
        [event] = outbox()
        assert event.correlation_id == response.json()["id"]
        assert Order.objects.get(pk=response.json()["id"]).status == "PENDING"

    def test_an_order_that_cannot_be_placed_costs_its_statement_and_two_reads(
        self, customer: APIClient, products: dict
    ) -> None:
        payload = {"lines": [{"product_id": 1, "quantity": 1}, {"product_id": 404, "quantity": 1}]}
        with CaptureQueriesContext(connection) as queries:
            response = place(customer, payload)
        assert response.status_code == 400
        # the order's statement, which wrote nothing, the replicas, to say why, and the order
        # this key placed before, if any (there is none: the errors are the answer)
        assert len(queries) == 3, [query["sql"] for query in queries]
        assert response.json()["errors"]["lines"][1] == {
            "product_id": ["Product 404 does not exist."]
        }
        assert (Order.objects.count(), OrderLine.objects.count()) == (0, 0)
        assert (OrderStatusChange.objects.count(), OutboxMessage.objects.count()) == (0, 0)

    def test_the_order_statement_carries_the_marks_of_events_published_before(
        self, customer: APIClient, products: dict
    ) -> None:
        """A web worker defers the sent marks of what it published (``defer_marks``): the next
        order's statement writes them, with no statement of their own."""
        first = place(customer, ONE_OF_EACH).json()["id"]
        [published] = OutboxMessage.objects.all()  # as if published and confirmed
        after_commit._link.defer([published.message_id])
        assert after_commit.marks_waiting()
        try:
            with CaptureQueriesContext(connection) as queries:
                response = place(customer, ONE_OF_EACH, key="key-2")
        finally:
            waiting = after_commit._link.take_marks()
        assert response.status_code == 202
        assert len(queries) == 1, [query["sql"] for query in queries]
        assert waiting == []  # carried: no longer waiting
        rows = {row.correlation_id: row for row in OutboxMessage.objects.all()}
        assert rows[first].sent_at is not None
        assert rows[response.json()["id"]].sent_at is None

    def test_marks_stay_waiting_when_the_order_statement_fails(
        self, customer: APIClient, products: dict, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        place(customer, ONE_OF_EACH)
        [published] = OutboxMessage.objects.all()
        after_commit._link.defer([published.message_id])
        try:
            clash_with_an_existing_event(monkeypatch)
            with pytest.raises(IntegrityError):
                place(customer, ONE_OF_EACH, key="key-2")
        finally:
            waiting = after_commit._link.take_marks()
        assert waiting == [published.message_id]
        assert OutboxMessage.objects.get(pk=published.pk).sent_at is None

    def test_a_replayed_key_leaves_the_connection_usable(
        self, customer: APIClient, products: dict
    ) -> None:
        first = place(customer, ONE_OF_EACH)
        second = place(customer, ONE_OF_EACH)  # meets the unique key, then reads the order
        assert (first.status_code, second.status_code) == (202, 200)
        assert second.json()["id"] == first.json()["id"]
        assert place(customer, ONE_OF_EACH, key="key-2").status_code == 202
        assert len(outbox()) == 2


class TestIdempotency:
    def test_same_key_and_body_returns_the_same_order_and_creates_nothing(
        self, customer: APIClient, products: dict
    ) -> None:
        first = place(customer, ONE_OF_EACH)
        second = place(customer, ONE_OF_EACH)

        assert first.status_code == 202
        assert second.status_code == 200
        assert second["Idempotent-Replayed"] == "true"
        assert second.json()["id"] == first.json()["id"]
        assert Order.objects.count() == 1
        assert OrderLine.objects.count() == 2
        assert len(outbox()) == 1

    def test_replay_shows_the_current_state_of_the_order(
        self, customer: APIClient, products: dict
    ) -> None:
        order_id = place(customer, ONE_OF_EACH).json()["id"]
        Order.objects.filter(pk=order_id).update(status="CONFIRMED")

        assert place(customer, ONE_OF_EACH).json()["status"] == "CONFIRMED"

    def test_same_lines_in_another_order_is_the_same_request(
        self, customer: APIClient, products: dict
    ) -> None:
        first = place(customer, ONE_OF_EACH)
        reordered = {"lines": list(reversed(ONE_OF_EACH["lines"]))}

        assert place(customer, reordered).json()["id"] == first.json()["id"]

    def test_replay_query_count_is_pinned(
        self, customer: APIClient, products: dict, django_assert_num_queries: Any
    ) -> None:
        first = place(customer, ONE_OF_EACH)
        # savepoint, the order's statement, whose insert meets the unique constraint,
        # rollback to and release of the savepoint, the order by its key, then the order with
        # its lines and history (one statement).
        with django_assert_num_queries(6):
            second = place(customer, ONE_OF_EACH)
        assert second.status_code == 200
        assert second.content == first.content

    def test_replay_works_after_a_product_became_unavailable(
        self, customer: APIClient, products: dict, make_product: Any
    ) -> None:
        first = place(customer, ONE_OF_EACH)
        make_product(2, active=False)

        second = place(customer, ONE_OF_EACH)

        assert second.status_code == 200
        assert second["Idempotent-Replayed"] == "true"
        assert second.json()["id"] == first.json()["id"]

    def test_same_key_with_another_body_naming_an_unknown_product_is_422(
        self, customer: APIClient, products: dict
    ) -> None:
        place(customer, ONE_OF_EACH)

        response = place(customer, {"lines": [{"product_id": 404, "quantity": 1}]})

        assert response.status_code == 422
        assert response.json()["code"] == "idempotency_key_reused"
        assert Order.objects.count() == 1

    def test_same_key_with_another_body_is_422(self, customer: APIClient, products: dict) -> None:
        place(customer, ONE_OF_EACH)

        response = place(customer, {"lines": [{"product_id": 1, "quantity": 5}]})

        assert response.status_code == 422
        assert response.json()["code"] == "idempotency_key_reused"
        assert "different order" in response.json()["detail"]
        assert Order.objects.count() == 1

    def test_the_key_belongs_to_one_customer(
        self, customer: APIClient, other_customer: APIClient, products: dict
    ) -> None:
        mine = place(customer, ONE_OF_EACH).json()["id"]
        theirs = place(other_customer, ONE_OF_EACH)

        assert theirs.status_code == 202
        assert theirs.json()["id"] != mine

    def test_a_rejected_request_does_not_use_up_the_key(
        self, customer: APIClient, products: dict
    ) -> None:
        assert place(customer, {"lines": [{"product_id": 404, "quantity": 1}]}).status_code == 400

        assert place(customer, ONE_OF_EACH).status_code == 202

    @pytest.mark.parametrize("key", [None, "", "   ", "k" * 256])
    def test_missing_or_unusable_key_is_400(
        self, customer: APIClient, products: dict, key: str | None
    ) -> None:
        response = place(customer, ONE_OF_EACH, key=key)

        assert response.status_code == 400
        assert response.json()["code"] == "idempotency_key_required"
        assert "Idempotency-Key" in response.json()["detail"]
        assert Order.objects.count() == 0


def record_lookups(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record what each idempotency-key lookup of ``order_place`` found."""
    real_lookup = placement.order_by_idempotency_key
    found: list[Any] = []

    def lookup(**kwargs: Any) -> Any:
        found.append(real_lookup(**kwargs))
        return found[-1]

    monkeypatch.setattr(placement, "order_by_idempotency_key", lookup)
    return found


class TestSameKeyRace:
    def test_a_new_key_is_not_looked_up(
        self, products: dict, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        found = record_lookups(monkeypatch)

        placement = services.order_place(
            user_id=5, idempotency_key="new", lines=[services.LineRequest(1, 1)]
        )

        assert placement.created is True
        assert found == []

    def test_meeting_the_unique_constraint_returns_the_winners_order(
        self, products: dict, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        lines = [services.LineRequest(product_id=1, quantity=1)]
        winner = services.order_place(user_id=5, idempotency_key="same", lines=lines).order
        found = record_lookups(monkeypatch)

        loser = services.order_place(user_id=5, idempotency_key="same", lines=lines)

        assert found == [winner]  # looked up once, after the IntegrityError
        assert loser == services.Placement(order=winner, created=False)
        assert Order.objects.count() == 1
        assert OutboxMessage.objects.count() == 1

    def test_meeting_the_constraint_with_another_body_is_refused(self, products: dict) -> None:
        services.order_place(user_id=5, idempotency_key="same", lines=[services.LineRequest(1, 1)])

        with pytest.raises(services.IdempotencyKeyReused):
            services.order_place(
                user_id=5, idempotency_key="same", lines=[services.LineRequest(1, 2)]
            )

    def test_another_integrity_error_is_not_taken_for_a_replay(
        self, products: dict, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        clash_with_an_existing_event(monkeypatch)  # the outbox's unique key, not the order's
        found = record_lookups(monkeypatch)

        with pytest.raises(IntegrityError, match="message_id"):
            services.order_place(
                user_id=5, idempotency_key="fresh", lines=[services.LineRequest(1, 1)]
            )

        assert found == [None]
        assert Order.objects.count() == 0


@pytest.mark.django_db(transaction=True)
class TestConcurrentSameKey:
    def test_two_requests_at_once_make_one_order(self, make_product: Any) -> None:
        make_product(1, price="12.50")
        lines = [services.LineRequest(product_id=1, quantity=1)]
        barrier = threading.Barrier(2)
        results: list[Any] = []

        def place_once() -> None:
            try:
                barrier.wait()
                results.append(services.order_place(user_id=5, idempotency_key="same", lines=lines))
            except Exception as exc:  # reported below
                results.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=place_once) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert all(isinstance(r, services.Placement) for r in results), results
        assert {r.order.id for r in results} == {Order.objects.get().id}
        assert sorted(r.created for r in results) == [False, True]
        assert OutboxMessage.objects.count() == 1


class TestValidation:
    @pytest.mark.parametrize(
        ("payload", "where"),
        [
            ({"lines": [{"product_id": 404, "quantity": 1}]}, "does not exist"),
            ({"lines": [{"product_id": 3, "quantity": 1}]}, "not available"),
            ({"lines": [{"product_id": 1, "quantity": 0}]}, "greater than or equal to 1"),
            ({"lines": [{"product_id": 1, "quantity": -2}]}, "greater than or equal to 1"),
            ({"lines": []}, "empty"),
            ({}, "required"),
            ({"lines": "1 of product 1"}, "list"),
            ({"lines": [{"product_id": 1}]}, "required"),
            ({"lines": [{"product_id": "1", "quantity": 1}]}, "valid integer"),
            ({"lines": [{"product_id": 1, "quantity": 1.5}]}, "valid integer"),
            ({"lines": [{"product_id": 1, "quantity": True}]}, "valid integer"),
            ({"lines": [{"product_id": 1, "quantity": "two"}]}, "valid integer"),
            ({"lines": [{"product_id": 0, "quantity": 1}]}, "greater than or equal to 1"),
            ({"lines": [{"product_id": 1, "quantity": 10_001}]}, "less than or equal to 10000"),
            (
                {"lines": [{"product_id": 1, "quantity": 1}, {"product_id": 1, "quantity": 2}]},
                "appears twice",
            ),
            ([{"product_id": 1, "quantity": 1}], "dictionary"),
        ],
    )
    def test_bad_requests_are_400_with_a_message(
        self, customer: APIClient, products: dict, payload: Any, where: str
    ) -> None:
        response = place(customer, payload)

        assert response.status_code == 400, response.json()
        assert where in response.json()["detail"]
        assert Order.objects.count() == 0
        assert OutboxMessage.objects.count() == 0

    def test_names_the_failing_line(self, customer: APIClient, products: dict) -> None:
        payload = {"lines": [{"product_id": 1, "quantity": 1}, {"product_id": 404, "quantity": 1}]}

        response = place(customer, payload)

        assert response.json()["errors"]["lines"][1] == {
            "product_id": ["Product 404 does not exist."]
        }

    def test_a_total_beyond_what_money_can_carry_is_400(
        self, customer: APIClient, make_product: Any
    ) -> None:
        make_product(1, price="9999999999.99")

        response = place(customer, {"lines": [{"product_id": 1, "quantity": 2}]})

        assert response.status_code == 400
        assert "may not exceed" in response.json()["detail"]

    def test_a_total_of_exactly_what_money_can_carry_is_placed(
        self, customer: APIClient, make_product: Any
    ) -> None:
        make_product(1, price="9999999999.99")

        response = place(customer, {"lines": [{"product_id": 1, "quantity": 1}]})

        assert response.status_code == 202, response.json()
        assert response.json()["total"] == "9999999999.99"

    def test_lines_found_placeable_on_a_second_look_are_400_to_send_again(
        self, customer: APIClient, products: dict, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # As if a product had been missing when the order's statement priced the lines, and
        # had been added by the time the replicas were read to say why.
        monkeypatch.setattr(persistence, "order_insert_priced", lambda *args: None)

        response = place(customer, ONE_OF_EACH)

        assert response.status_code == 400
        assert "changed while this order was placed" in response.json()["detail"]
        assert Order.objects.count() == 0
        assert OutboxMessage.objects.count() == 0

    def test_malformed_json_is_400(self, customer: APIClient, products: dict) -> None:
        response = customer.post(
            URL, data="{not json", content_type="application/json", HTTP_IDEMPOTENCY_KEY="k"
        )

        assert response.status_code == 400


class TestAuthentication:
    def test_no_token_is_401(self, products: dict) -> None:
        response = place(APIClient(), ONE_OF_EACH)

        assert response.status_code == 401
        assert Order.objects.count() == 0

    def test_a_forged_token_is_401(self, products: dict) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Bearer not.a.jwt")

        assert place(client, ONE_OF_EACH).status_code == 401
