"""Rules that need no database: the transition table, fingerprints, request validation."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from messaging.consumer import RejectMessage
from orders.apis import MAX_ID, MAX_LINES, MAX_QUANTITY, OrderListCreateApi, plain_lines
from orders.handlers import HANDLERS, on_product_upserted, on_stock_reserved
from orders.models import STATUS_LENGTH, TRANSITIONS, OrderStatus
from orders.services import LineRequest, request_fingerprint
from tests.factories import product_upserted, stock_event


class TestTransitions:
    def test_every_status_has_an_entry(self) -> None:
        assert set(TRANSITIONS) == set(OrderStatus.values)

    @pytest.mark.parametrize(
        "final", [OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.SHIPPED]
    )
    def test_final_states_have_no_way_out(self, final: str) -> None:
        assert TRANSITIONS[final] == frozenset()

    def test_nothing_leads_back_to_pending(self) -> None:
        assert all(OrderStatus.PENDING not in targets for targets in TRANSITIONS.values())

    def test_confirmed_only_ships_in_part_or_whole_or_cancels(self) -> None:
        assert TRANSITIONS[OrderStatus.CONFIRMED] == {
            OrderStatus.PARTIALLY_SHIPPED,
            OrderStatus.SHIPPED,
            OrderStatus.CANCELLED,
        }

    def test_partially_shipped_only_ends_shipped(self) -> None:
        # The last shipment, or a cancellation of the rest: what has shipped stays shipped.
        assert TRANSITIONS[OrderStatus.PARTIALLY_SHIPPED] == {OrderStatus.SHIPPED}

    def test_pending_may_wait_on_backorder(self) -> None:
        assert OrderStatus.BACKORDERED in TRANSITIONS[OrderStatus.PENDING]

    def test_backordered_only_confirms_or_cancels(self) -> None:
        # Never back to PENDING, never shipped before its stock is all reserved.
        assert TRANSITIONS[OrderStatus.BACKORDERED] == {
            OrderStatus.CONFIRMED,
            OrderStatus.CANCELLED,
        }

    def test_every_status_fits_its_column(self) -> None:
        assert max(len(status) for status in OrderStatus.values) <= STATUS_LENGTH


class TestRequestFingerprint:
    def test_ignores_the_order_of_lines(self) -> None:
        a = [LineRequest(1, 2), LineRequest(5, 1)]

        assert request_fingerprint(a) == request_fingerprint(list(reversed(a)))

    def test_changes_with_a_quantity(self) -> None:
        assert request_fingerprint([LineRequest(1, 2)]) != request_fingerprint([LineRequest(1, 3)])

    def test_changes_with_a_product(self) -> None:
        assert request_fingerprint([LineRequest(1, 2)]) != request_fingerprint([LineRequest(2, 2)])


class TestPlaceInput:
    def validate(self, payload: Any) -> tuple[bool, Any]:
        serializer = OrderListCreateApi.InputSerializer(data=payload)
        return serializer.is_valid(), serializer.errors or serializer.validated_data

    def test_keeps_only_product_ids_and_quantities(self) -> None:
        ok, data = self.validate(
            {"lines": [{"product_id": 1, "quantity": 2, "price": "0.01"}], "status": "SHIPPED"}
        )

        assert ok
        assert data == {"lines": [{"product_id": 1, "quantity": 2}]}

    @pytest.mark.parametrize("value", ["2", 2.0, 2.5, True, None, [2], {"n": 2}])
    def test_quantity_must_be_a_json_integer(self, value: Any) -> None:
        ok, errors = self.validate({"lines": [{"product_id": 1, "quantity": value}]})

        assert not ok
        assert "quantity" in errors["lines"][0]

    def test_at_most_500_lines(self) -> None:
        lines = [{"product_id": i, "quantity": 1} for i in range(1, 502)]

        ok, errors = self.validate({"lines": lines})

        assert not ok
        assert "lines" in errors


# Bodies around the edges of what an order may hold: JSON values a client could send.
_NUMBERS = st.one_of(
    st.sampled_from([0, 1, 2, MAX_QUANTITY, MAX_QUANTITY + 1, MAX_ID, MAX_ID + 1, -1]),
    st.integers(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.text(max_size=3),
    st.none(),
)
_LINE = st.one_of(
    st.fixed_dictionaries(
        {"product_id": _NUMBERS, "quantity": _NUMBERS}, optional={"price": _NUMBERS}
    ),
    st.dictionaries(st.sampled_from(["product_id", "quantity", "x"]), _NUMBERS),
    _NUMBERS,
)
_BODY = st.one_of(
    st.fixed_dictionaries({"lines": st.lists(_LINE, max_size=4)}, optional={"status": _NUMBERS}),
    st.fixed_dictionaries({"lines": _NUMBERS}),
    st.lists(_LINE, max_size=2),
    _NUMBERS,
)


class TestPlainLines:
    """The hand-written check of the usual body takes nothing the serializer refuses, and reads
    what the serializer reads; anything else goes to the serializer."""

    @settings(max_examples=400, deadline=None, database=None, derandomize=True)
    @given(_BODY)
    def test_accepts_only_what_the_serializer_accepts_and_reads_the_same(self, body: Any) -> None:
        plain = plain_lines(body)
        serializer = OrderListCreateApi.InputSerializer(data=body)

        if plain is not None:
            assert serializer.is_valid(), serializer.errors
            assert plain == [LineRequest(**x) for x in serializer.validated_data["lines"]]

    def test_takes_the_usual_body(self) -> None:
        body = {"lines": [{"product_id": 3, "quantity": 2}, {"product_id": MAX_ID, "quantity": 1}]}

        assert plain_lines(body) == [LineRequest(3, 2), LineRequest(MAX_ID, 1)]

    @pytest.mark.parametrize(
        "body",
        [
            {"lines": [{"product_id": 1, "quantity": True}]},
            {"lines": [{"product_id": "1", "quantity": 1}]},
            {"lines": []},
            {"lines": [{"product_id": 1, "quantity": 1}] * (MAX_LINES + 1)},
            [{"product_id": 1, "quantity": 1}],
        ],
    )
    def test_leaves_anything_unusual_to_the_serializer(self, body: Any) -> None:
        assert plain_lines(body) is None


class TestHandlersRefuseWhatCanNeverWork:
    def test_all_consumed_events_have_a_handler(self) -> None:
        from messaging.topology import CONSUMES

        assert set(HANDLERS) == set(CONSUMES["orders"])

    def test_an_order_id_that_is_not_a_uuid_is_rejected(self) -> None:
        # The schema already refuses it; this guards a handler called with an unchecked envelope.
        valid = stock_event(
            "stock.reserved", uuid.uuid4(), lines=[{"product_id": 1, "quantity": 1}]
        )
        event = replace(valid, data={**valid.data, "order_id": "-" * 36})

        with pytest.raises(RejectMessage, match="not a UUID"):
            on_stock_reserved(event)

    def test_an_unreadable_occurred_at_is_rejected(self) -> None:
        event = replace(product_upserted(1), occurred_at="yesterday-ish")

        with pytest.raises(RejectMessage, match="ISO 8601"):
            on_product_upserted(event)
