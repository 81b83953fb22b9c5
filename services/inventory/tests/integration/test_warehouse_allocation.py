"""order.created against stock kept in several warehouses: one parcel when one warehouse can
send it all (the highest priority first), else split in priority order; inactive warehouses
are never allocated from; release and shipment give back exactly what was taken where."""

import pytest

from stock.handlers import on_order_cancelled, on_order_created, on_order_shipped
from stock.models import Reservation, StockLedgerEntry, Warehouse
from stock.selectors import stock_ledger_mismatches
from stock.warehouses import warehouse_update
from tests import factories
from tests.factories import add_stock, published, stock_by_warehouse

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("either_stock_path")]


def order(*lines):
    """Reserve an order of (product, quantity) lines; its reservation."""
    envelope = factories.order_created([(product.pk, quantity) for product, quantity in lines])
    on_order_created(envelope)
    return Reservation.objects.get(order_id=envelope.data["order_id"])


def held(reservation):
    """Units the reservation holds per (product id, warehouse code)."""
    codes = dict(Warehouse.objects.values_list("id", "code"))
    return {(pid, codes[wid]): quantity for (pid, wid), quantity in reservation.held().items()}


@pytest.fixture
def hammer_and_nails(make_product, make_warehouse):
    """Hammers: 5 in east (priority 5), 5 in default; nails: 5 in default, 1 in east."""
    make_warehouse("east", priority=5)
    hammer, nails = make_product(), make_product()
    for product, stock in ((hammer, {"east": 5, None: 5}), (nails, {"east": 1, None: 5})):
        for code, units in stock.items():
            add_stock(product.pk, units, code)
    return hammer, nails


class TestOneParcel:
    def test_the_highest_priority_warehouse_that_has_every_line_sends_it_all(
        self, hammer_and_nails
    ):
        hammer, nails = hammer_and_nails

        first = order((hammer, 2), (nails, 1))  # east has both
        second = order((hammer, 2), (nails, 1))  # east has no nails left: default has both

        assert held(first) == {(hammer.pk, "east"): 2, (nails.pk, "east"): 1}
        assert held(second) == {(hammer.pk, "default"): 2, (nails.pk, "default"): 1}
        assert stock_by_warehouse(hammer.pk) == {"east": (5, 2), "default": (5, 2)}
        assert stock_by_warehouse(nails.pk) == {"east": (1, 1), "default": (5, 1)}
        assert stock_ledger_mismatches() == []

    def test_the_events_say_nothing_of_warehouses(self, hammer_and_nails):
        hammer, nails = hammer_and_nails

        reservation = order((nails, 2), (hammer, 1))

        [event] = published("stock.reserved")
        assert event.data == {
            "order_id": str(reservation.order_id),
            "lines": [
                {"product_id": hammer.pk, "quantity": 1},
                {"product_id": nails.pk, "quantity": 2},
            ],
        }
        assert reservation.lines == event.data["lines"]


class TestSplit:
    def test_a_line_no_warehouse_can_fill_comes_from_several_in_priority_order(
        self, hammer_and_nails
    ):
        hammer, _ = hammer_and_nails

        reservation = order((hammer, 7))

        assert held(reservation) == {(hammer.pk, "east"): 5, (hammer.pk, "default"): 2}
        assert stock_by_warehouse(hammer.pk) == {"east": (5, 5), "default": (5, 2)}
        entries = StockLedgerEntry.objects.filter(kind="reserve").order_by("id")
        assert [(e.warehouse.code, e.delta_reserved) for e in entries] == [
            ("default", 2),
            ("east", 5),
        ]
        assert stock_ledger_mismatches() == []

    def test_the_order_is_rejected_whole_when_all_warehouses_together_lack_units(
        self, hammer_and_nails
    ):
        hammer, nails = hammer_and_nails

        reservation = order((hammer, 1), (nails, 7))

        assert reservation.status == Reservation.Status.REJECTED
        assert reservation.allocations == []
        assert reservation.reason == (
            f"1 of 2 lines cannot be reserved: product {nails.pk}: only 6 available"
        )
        assert stock_by_warehouse(hammer.pk) == {"east": (5, 0), "default": (5, 0)}

    def test_the_last_units_of_every_warehouse_go_to_one_order(self, hammer_and_nails):
        hammer, nails = hammer_and_nails

        reservation = order((hammer, 10), (nails, 6))

        assert reservation.status == Reservation.Status.RESERVED
        assert sum(reservation.held().values()) == 16
        assert stock_by_warehouse(hammer.pk) == {"east": (5, 5), "default": (5, 5)}
        assert stock_by_warehouse(nails.pk) == {"east": (1, 1), "default": (5, 5)}


class TestInactiveWarehouse:
    def test_is_never_allocated_from(self, hammer_and_nails):
        hammer, _ = hammer_and_nails
        warehouse_update(warehouse=Warehouse.objects.get(code="east"), data={"active": False})

        alone = order((hammer, 5))
        rejected = order((hammer, 1))

        assert held(alone) == {(hammer.pk, "default"): 5}
        assert rejected.status == Reservation.Status.REJECTED
        assert rejected.reason == (
            f"1 of 1 lines cannot be reserved: product {hammer.pk}: only 0 available"
        )
        assert stock_by_warehouse(hammer.pk) == {"east": (5, 0), "default": (5, 5)}

    def test_keeps_what_it_holds_for_orders_reserved_before(self, hammer_and_nails):
        hammer, _ = hammer_and_nails
        released, shipped = order((hammer, 2)), order((hammer, 3))
        warehouse_update(warehouse=Warehouse.objects.get(code="east"), data={"active": False})

        on_order_cancelled(factories.order_cancelled(str(released.order_id)))
        on_order_shipped(factories.order_shipped(str(shipped.order_id)))

        assert stock_by_warehouse(hammer.pk) == {"east": (2, 0), "default": (5, 0)}
        assert stock_ledger_mismatches() == []


class TestReleaseAndShip:
    def test_give_back_exactly_what_was_taken_in_each_warehouse(self, hammer_and_nails):
        hammer, nails = hammer_and_nails
        split = order((hammer, 7), (nails, 1))  # hammers: 5 east + 2 default; nails: east
        shipped = order((hammer, 3))  # default

        on_order_cancelled(factories.order_cancelled(str(split.order_id)))
        on_order_shipped(factories.order_shipped(str(shipped.order_id)))

        assert stock_by_warehouse(hammer.pk) == {"east": (5, 0), "default": (2, 0)}
        assert stock_by_warehouse(nails.pk) == {"east": (1, 0), "default": (5, 0)}
        releases = StockLedgerEntry.objects.filter(kind="release").order_by("id")
        assert sorted((e.product_id, e.warehouse.code, e.delta_reserved) for e in releases) == [
            (hammer.pk, "default", -2),
            (hammer.pk, "east", -5),
            (nails.pk, "east", -1),
        ]
        [ship] = StockLedgerEntry.objects.filter(kind="ship")
        assert (ship.warehouse.code, ship.delta_on_hand, ship.delta_reserved) == ("default", -3, -3)
        assert stock_ledger_mismatches() == []


class TestLowStock:
    def test_speaks_of_what_the_active_warehouses_can_still_supply(
        self, make_product, make_warehouse
    ):
        make_warehouse("east", priority=5)
        make_warehouse("closed", active=False)
        hammer = make_product(low_stock_threshold=5)
        for code, units in (("east", 4), (None, 4), ("closed", 50)):
            add_stock(hammer.pk, units, code)

        order((hammer, 3))  # 8 -> 5: not under 5
        order((hammer, 1))  # 5 -> 4

        [event] = published("stock.low")
        assert (event.data["product_id"], event.data["available"]) == (hammer.pk, 4)
