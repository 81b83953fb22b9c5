"""The changes of this code's event payloads (messaging.changes): each ``up`` and ``down``,
their round trips, what the older version cannot say, and that every version has its change."""

from __future__ import annotations

import uuid

import pytest

from messaging import schemas, versions
from messaging.envelope import Envelope, decode

ORDER = str(uuid.uuid4())
RESERVED_V1 = {"order_id": ORDER, "lines": [{"product_id": 1, "quantity": 3}]}
RESERVED_V2 = {
    **RESERVED_V1,
    "allocations": [
        {"product_id": 1, "warehouse": "wh-east", "quantity": 2},
        {"product_id": 1, "warehouse": "wh-west", "quantity": 1},
    ],
}
SHIPPED_V1 = {"order_id": ORDER, "user_id": 7}


def shipped_v2(*, complete: bool, lines: list | None = None) -> dict:
    return {
        **SHIPPED_V1,
        "shipment_id": 3,
        "warehouse": "wh-east",
        "lines": [{"product_id": 1, "quantity": 2}] if lines is None else lines,
        "complete": complete,
    }


def published(event_type: str, version: int, data: dict) -> bytes:
    envelope = Envelope.new(event_type, data, source="test", correlation_id=ORDER, version=version)
    return envelope.to_json().encode()


def test_every_version_after_the_first_has_its_change() -> None:
    later = {key for key in schemas.EVENTS if key[1] > 1}
    assert later == set(versions.CHANGES)
    assert {("stock.reserved", 2), ("order.shipped", 2)} <= later
    for event_type, version in schemas.EVENTS:
        assert all((event_type, v) in schemas.EVENTS for v in range(1, version)), event_type


def test_none_is_published_by_default() -> None:
    for event_type, _ in versions.CHANGES:
        assert versions.version_to_publish(event_type, {}) == 1
        assert versions.version_to_publish(event_type, versions.LATEST) == 2


class TestStockReserved:
    def test_a_v1_reservation_has_no_known_allocation(self) -> None:
        envelope = decode(published("stock.reserved", 1, RESERVED_V1))
        assert (envelope.version, envelope.data) == (2, {**RESERVED_V1, "allocations": []})

    def test_v2_is_read_as_published(self) -> None:
        envelope = decode(published("stock.reserved", 2, RESERVED_V2))
        assert envelope.data == RESERVED_V2

    def test_v2_without_allocations_is_valid(self) -> None:
        schemas.validate("stock.reserved", 2, RESERVED_V1)
        with pytest.raises(schemas.SchemaViolation, match="allocations/0"):
            bad = {
                **RESERVED_V1,
                "allocations": [{"product_id": 1, "warehouse": "", "quantity": 1}],
            }
            schemas.validate("stock.reserved", 2, bad)

    def test_round_trips(self) -> None:
        change = versions.CHANGES[("stock.reserved", 2)]
        assert change.down(change.up(RESERVED_V1)) == RESERVED_V1
        assert change.up(change.down(RESERVED_V2)) == {**RESERVED_V1, "allocations": []}

    def test_published_as_v1_until_told(self) -> None:
        assert versions.for_publishing("stock.reserved", RESERVED_V2, {}) == (1, RESERVED_V1)
        assert versions.for_publishing("stock.reserved", RESERVED_V2, versions.LATEST) == (
            2,
            RESERVED_V2,
        )


class TestOrderShipped:
    def test_a_v1_shipment_is_everything_that_remained_and_the_last(self) -> None:
        envelope = decode(published("order.shipped", 1, SHIPPED_V1))
        assert envelope.version == 2
        assert envelope.data == {
            **SHIPPED_V1,
            "shipment_id": None,
            "warehouse": None,
            "lines": [],
            "complete": True,
        }

    def test_v2_is_read_as_published(self) -> None:
        data = shipped_v2(complete=False)
        assert decode(published("order.shipped", 2, data)).data == data

    def test_round_trips(self) -> None:
        change = versions.CHANGES[("order.shipped", 2)]
        assert change.down(change.up(SHIPPED_V1)) == SHIPPED_V1
        whole = shipped_v2(complete=True)
        assert change.down(whole) == SHIPPED_V1
        assert change.up(change.down(whole))["complete"] is True

    @pytest.mark.parametrize("lines", [None, []])
    def test_a_partial_shipment_has_no_v1(self, lines: list | None) -> None:
        partial = shipped_v2(complete=False, lines=lines)
        with pytest.raises(versions.NotExpressible, match="partial shipment"):
            versions.CHANGES[("order.shipped", 2)].down(partial)
        with pytest.raises(versions.NotExpressible):
            versions.for_publishing("order.shipped", partial, {})
        assert versions.for_publishing("order.shipped", partial, versions.LATEST) == (2, partial)

    def test_the_last_shipment_is_published_as_v1_until_told(self) -> None:
        whole = shipped_v2(complete=True)
        assert versions.for_publishing("order.shipped", whole, {}) == (1, SHIPPED_V1)
        pinned = {"order.shipped": 2}
        assert versions.for_publishing("order.shipped", whole, pinned) == (2, whole)

    def test_v2_fields_are_checked(self) -> None:
        for bad in (
            {**shipped_v2(complete=True), "complete": "yes"},
            {**shipped_v2(complete=True), "shipment_id": 0},
            shipped_v2(complete=True, lines=[{"product_id": 1, "quantity": 0}]),
            {key: v for key, v in shipped_v2(complete=True).items() if key != "lines"},
        ):
            with pytest.raises(schemas.SchemaViolation):
                schemas.validate("order.shipped", 2, bad)
        schemas.validate("order.shipped", 2, {**shipped_v2(complete=True), "warehouse": None})
