"""Shipping an order in parts (order.shipped v2), cancelling what is left after a part, and
stock.reserved v2 saying where each unit is held: counters, ledger and reservation move
warehouse by warehouse, and what cannot be shipped is refused with nothing written."""

import json

import pytest
from django.db import transaction

from messaging.consumer import RejectMessage
from messaging.models import OutboxMessage
from stock.handlers import on_order_cancelled, on_order_created, on_order_shipped
from stock.models import Reservation, StockLedgerEntry
from stock.selectors import reserved_units, stock_ledger_mismatches
from tests import factories
from tests.factories import add_stock, published, stock_by_warehouse

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("either_stock_path")]


@pytest.fixture
def split_order(make_product, make_warehouse):
    """5 hammers and 1 saw ordered: 3 hammers and the saw in east (priority 5), 2 hammers in
    default. Returns (hammer, saw, order id)."""
    make_warehouse("east", priority=5)
    hammer, saw = make_product(), make_product()
    add_stock(hammer.pk, 3, "east")
    add_stock(hammer.pk, 2, None)
    add_stock(saw.pk, 1, "east")
    envelope = factories.order_created([(hammer.pk, 5), (saw.pk, 1)])
    on_order_created(envelope)
    return hammer, saw, envelope.data["order_id"]


def reservation(order_id):
    return Reservation.objects.get(order_id=order_id)


def ledger(order_id, kind):
    """(product id, warehouse code, delta on hand, delta reserved) of the order's entries."""
    entries = StockLedgerEntry.objects.filter(order_id=order_id, kind=kind).order_by("id")
    return [(e.product_id, e.warehouse.code, e.delta_on_hand, e.delta_reserved) for e in entries]


def ship(order_id, shipment_id, warehouse, lines, **flags):
    """Handle one shipment in its own transaction (a savepoint here), as the consumer does:
    rolled back if refused."""
    envelope = factories.order_shipment(order_id, shipment_id, warehouse, lines, **flags)
    with transaction.atomic():
        on_order_shipped(envelope)


class TestStockReservedVersions:
    def test_version_1_by_default_the_same_bytes_as_before(self, split_order):
        hammer, saw, order_id = split_order

        [row] = OutboxMessage.objects.filter(routing_key="stock.reserved")
        raw = json.loads(row.body)

        assert raw["version"] == 1
        before = {
            "order_id": order_id,
            "lines": [
                {"product_id": hammer.pk, "quantity": 5},
                {"product_id": saw.pk, "quantity": 1},
            ],
        }
        assert raw["data"] == before
        # the payload as written for version 1: the fields of before, in the same order
        data = json.loads(row.body)["data"]
        assert json.dumps(data, sort_keys=True) == json.dumps(before, sort_keys=True)
        assert sorted(data) == ["lines", "order_id"]

    def test_version_2_says_where_each_unit_is_held_by_warehouse_code(
        self, settings, make_product, make_warehouse
    ):
        settings.MESSAGING_EVENT_VERSIONS = "latest"
        make_warehouse("east", priority=5)
        hammer = make_product()
        add_stock(hammer.pk, 3, "east")
        add_stock(hammer.pk, 2, None)
        envelope = factories.order_created([(hammer.pk, 4)])

        on_order_created(envelope)

        [event] = published("stock.reserved")
        assert event.version == 2
        assert event.data == {
            "order_id": envelope.data["order_id"],
            "lines": [{"product_id": hammer.pk, "quantity": 4}],
            "allocations": [
                {"product_id": hammer.pk, "warehouse": "default", "quantity": 1},
                {"product_id": hammer.pk, "warehouse": "east", "quantity": 3},
            ],
        }

    def test_version_2_when_pinned_for_that_event_alone(self, settings, make_product):
        settings.MESSAGING_EVENT_VERSIONS = "stock.reserved=2"
        hammer = make_product(on_hand=2)
        envelope = factories.order_created([(hammer.pk, 2)])

        on_order_created(envelope)

        [event] = published("stock.reserved")
        assert event.data["allocations"] == [
            {"product_id": hammer.pk, "warehouse": "default", "quantity": 2}
        ]


class TestShipInParts:
    def test_each_part_leaves_its_own_warehouse(self, split_order):
        hammer, saw, order_id = split_order

        ship(order_id, 1, "east", [(hammer.pk, 2)])

        assert stock_by_warehouse(hammer.pk) == {"east": (1, 1), "default": (2, 2)}
        assert stock_by_warehouse(saw.pk) == {"east": (1, 1), "default": (0, 0)}
        assert ledger(order_id, "ship") == [(hammer.pk, "east", -2, -2)]
        after_first = reservation(order_id)
        assert after_first.status == Reservation.Status.PARTIALLY_SHIPPED
        assert after_first.shipment_ids == [1]
        assert stock_ledger_mismatches() == []

        ship(order_id, 2, "east", [(hammer.pk, 1), (saw.pk, 1)])
        ship(order_id, 3, "default", [(hammer.pk, 2)], complete=True)

        assert stock_by_warehouse(hammer.pk) == {"east": (0, 0), "default": (0, 0)}
        assert stock_by_warehouse(saw.pk) == {"east": (0, 0), "default": (0, 0)}
        done = reservation(order_id)
        assert done.status == Reservation.Status.SHIPPED
        assert done.shipment_ids == [1, 2, 3]
        assert [(a["quantity"], a.get("shipped")) for a in done.allocations] == [
            (2, 2),
            (3, 3),
            (1, 1),
        ]
        assert len(ledger(order_id, "ship")) == 4  # one per row and shipment
        assert stock_ledger_mismatches() == []

    def test_the_same_shipment_under_another_message_id_ships_once(self, split_order):
        hammer, _, order_id = split_order
        ship(order_id, 7, "east", [(hammer.pk, 2)])

        ship(order_id, 7, "east", [(hammer.pk, 2)])  # a new envelope: a new message id

        assert stock_by_warehouse(hammer.pk) == {"east": (1, 1), "default": (2, 2)}
        assert len(ledger(order_id, "ship")) == 1
        assert reservation(order_id).shipment_ids == [7]

    def test_version_1_ships_everything_not_shipped_yet(self, split_order):
        hammer, saw, order_id = split_order
        ship(order_id, 1, "east", [(hammer.pk, 2)])

        on_order_shipped(factories.order_shipped(order_id))

        assert stock_by_warehouse(hammer.pk) == {"east": (0, 0), "default": (0, 0)}
        assert stock_by_warehouse(saw.pk) == {"east": (0, 0), "default": (0, 0)}
        assert reservation(order_id).status == Reservation.Status.SHIPPED
        assert sorted(ledger(order_id, "ship")) == sorted(
            [
                (hammer.pk, "east", -2, -2),
                (hammer.pk, "default", -2, -2),
                (hammer.pk, "east", -1, -1),
                (saw.pk, "east", -1, -1),
            ]
        )
        assert stock_ledger_mismatches() == []

    def test_no_warehouse_named_takes_each_products_rows_in_turn(self, split_order):
        """/ship/ of an order whose allocation orders does not know: the units left, from no
        named warehouse."""
        hammer, saw, order_id = split_order

        ship(order_id, 4, None, [(hammer.pk, 5), (saw.pk, 1)], complete=True)

        assert stock_by_warehouse(hammer.pk) == {"east": (0, 0), "default": (0, 0)}
        assert reservation(order_id).status == Reservation.Status.SHIPPED
        assert stock_ledger_mismatches() == []


class TestShipmentRefused:
    """Dead-lettered with a reason; nothing written."""

    def refused(self, order_id, shipment_id, warehouse, lines):
        before = (StockLedgerEntry.objects.count(), reservation(order_id).allocations)
        with pytest.raises(RejectMessage) as caught:
            ship(order_id, shipment_id, warehouse, lines)
        after = (StockLedgerEntry.objects.count(), reservation(order_id).allocations)
        assert after == before
        assert reservation(order_id).shipment_ids == []
        return str(caught.value)

    def test_more_than_is_held_there(self, split_order):
        hammer, _, order_id = split_order

        reason = self.refused(order_id, 1, "default", [(hammer.pk, 3)])

        assert "3 units of product" in reason and "2 held there" in reason
        assert stock_by_warehouse(hammer.pk) == {"east": (3, 3), "default": (2, 2)}

    def test_more_than_is_left_after_an_earlier_part(self, split_order):
        hammer, _, order_id = split_order
        ship(order_id, 1, "east", [(hammer.pk, 2)])
        before = StockLedgerEntry.objects.count()

        with pytest.raises(RejectMessage, match="1 held there and not shipped yet"):
            ship(order_id, 2, "east", [(hammer.pk, 2)])

        assert StockLedgerEntry.objects.count() == before
        assert reservation(order_id).shipment_ids == [1]

    def test_a_product_not_held_in_that_warehouse(self, split_order):
        _, saw, order_id = split_order

        reason = self.refused(order_id, 1, "default", [(saw.pk, 1)])

        assert f"product {saw.pk} is not held there" in reason

    def test_a_warehouse_that_holds_nothing_of_the_order(self, split_order, make_warehouse):
        hammer, _, order_id = split_order
        make_warehouse("west")

        reason = self.refused(order_id, 1, "west", [(hammer.pk, 1)])

        assert "nothing of it is held in warehouse 'west'" in reason

    def test_an_order_never_reserved_here(self, make_product):
        with pytest.raises(RejectMessage, match="never reserved here"):
            ship("6b1f7f3e-4d7e-4a53-9b62-0c2b1d2e3f40", 1, "default", [(1, 1)])

    def test_a_released_reservation_ships_nothing(self, split_order):
        hammer, _, order_id = split_order
        on_order_cancelled(factories.order_cancelled(order_id))

        ship(order_id, 1, "east", [(hammer.pk, 2)])

        assert ledger(order_id, "ship") == []
        assert stock_by_warehouse(hammer.pk) == {"east": (3, 0), "default": (2, 0)}
        assert reservation(order_id).status == Reservation.Status.RELEASED


class TestCancelAfterAPart:
    def test_releases_only_what_has_not_shipped(self, split_order):
        hammer, saw, order_id = split_order
        ship(order_id, 1, "east", [(hammer.pk, 3), (saw.pk, 1)])

        on_order_cancelled(factories.order_cancelled(order_id, reason="rest not wanted"))

        assert stock_by_warehouse(hammer.pk) == {"east": (0, 0), "default": (2, 0)}
        assert stock_by_warehouse(saw.pk) == {"east": (0, 0), "default": (0, 0)}
        assert ledger(order_id, "release") == [(hammer.pk, "default", 0, -2)]
        released = reservation(order_id)
        assert released.status == Reservation.Status.RELEASED
        assert [a.get("shipped", 0) for a in released.allocations] == [0, 3, 1]
        [event] = published("stock.released")
        assert event.data == {"order_id": order_id, "reason": "rest not wanted"}
        assert reserved_units() == {}
        assert stock_ledger_mismatches() == []

    def test_a_part_then_a_cancel_then_the_same_part_again(self, split_order):
        hammer, _, order_id = split_order
        ship(order_id, 1, "east", [(hammer.pk, 1)])
        on_order_cancelled(factories.order_cancelled(order_id))

        ship(order_id, 1, "east", [(hammer.pk, 1)])
        ship(order_id, 2, "east", [(hammer.pk, 1)])  # after the cancel: nothing is held

        assert ledger(order_id, "ship") == [(hammer.pk, "east", -1, -1)]
        assert stock_by_warehouse(hammer.pk) == {"east": (2, 0), "default": (2, 0)}
        assert stock_ledger_mismatches() == []


class TestReconcile:
    def test_partly_shipped_reservations_count_what_they_still_hold(self, split_order):
        hammer, saw, order_id = split_order
        ship(order_id, 1, "east", [(hammer.pk, 2)])

        held = reserved_units()

        east = reservation(order_id).allocations[1]["warehouse_id"]
        default = reservation(order_id).allocations[0]["warehouse_id"]
        assert held == {(hammer.pk, default): 2, (hammer.pk, east): 1, (saw.pk, east): 1}
        assert stock_ledger_mismatches() == []
