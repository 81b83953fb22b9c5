import pytest

from messaging.consumer import RejectMessage
from stock.handlers import on_order_cancelled, on_order_created, on_order_shipped
from stock.models import Reservation, StockLedgerEntry, StockLevel
from tests import factories
from tests.factories import published

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("either_stock_path")]


def counters(product):
    stock = StockLevel.objects.get(product=product)
    return stock.on_hand, stock.reserved


def reserve(product, quantity):
    envelope = factories.order_created([(product.pk, quantity)])
    on_order_created(envelope)
    return envelope.data["order_id"]


class TestCancel:
    def test_releases_the_reservation(self, make_product):
        hammer = make_product(on_hand=5)
        order_id = reserve(hammer, 3)

        on_order_cancelled(factories.order_cancelled(order_id, reason="too slow"))

        assert counters(hammer) == (5, 0)
        assert Reservation.objects.get(order_id=order_id).status == Reservation.Status.RELEASED
        entry = StockLedgerEntry.objects.get(kind="release")
        assert (entry.delta_on_hand, entry.delta_reserved) == (0, -3)
        [event] = published("stock.released")
        assert event.data == {"order_id": order_id, "reason": "too slow"}

    def test_a_second_cancel_releases_nothing_more(self, make_product):
        hammer = make_product(on_hand=5)
        order_id = reserve(hammer, 3)
        on_order_cancelled(factories.order_cancelled(order_id))

        on_order_cancelled(factories.order_cancelled(order_id))

        assert counters(hammer) == (5, 0)
        assert len(published("stock.released")) == 1

    def test_cancelling_a_rejected_order_changes_nothing(self, make_product):
        hammer = make_product(on_hand=1)
        order_id = reserve(hammer, 3)

        on_order_cancelled(factories.order_cancelled(order_id))

        assert Reservation.objects.get(order_id=order_id).status == Reservation.Status.REJECTED
        assert published("stock.released") == []


class TestCancelBeforeCreated:
    def test_leaves_a_tombstone_so_the_late_order_reserves_nothing(self, make_product):
        hammer = make_product(on_hand=5)
        created = factories.order_created([(hammer.pk, 2)])
        order_id = created.data["order_id"]

        on_order_cancelled(factories.order_cancelled(order_id))
        on_order_created(created)

        assert counters(hammer) == (5, 0)
        reservation = Reservation.objects.get(order_id=order_id)
        assert reservation.status == Reservation.Status.CANCELLED
        assert reservation.lines == []
        assert published("stock.reserved") == published("stock.rejected") == []


class TestShip:
    def test_turns_the_reservation_into_a_shipment(self, make_product):
        hammer = make_product(on_hand=5)
        order_id = reserve(hammer, 3)

        on_order_shipped(factories.order_shipped(order_id))

        assert counters(hammer) == (2, 0)
        assert Reservation.objects.get(order_id=order_id).status == Reservation.Status.SHIPPED
        entry = StockLedgerEntry.objects.get(kind="ship")
        assert (entry.delta_on_hand, entry.delta_reserved) == (-3, -3)

    def test_shipping_twice_ships_once(self, make_product):
        hammer = make_product(on_hand=5)
        order_id = reserve(hammer, 3)
        on_order_shipped(factories.order_shipped(order_id))

        on_order_shipped(factories.order_shipped(order_id))

        assert counters(hammer) == (2, 0)

    def test_a_released_order_is_not_shipped(self, make_product):
        hammer = make_product(on_hand=5)
        order_id = reserve(hammer, 3)
        on_order_cancelled(factories.order_cancelled(order_id))

        on_order_shipped(factories.order_shipped(order_id))

        assert counters(hammer) == (5, 0)
        assert Reservation.objects.get(order_id=order_id).status == Reservation.Status.RELEASED

    def test_an_order_never_reserved_is_rejected_to_the_dead_letter_queue(self, make_product):
        with pytest.raises(RejectMessage, match="never reserved"):
            on_order_shipped(factories.order_shipped("6b1f7f3e-4d7e-4a53-9b62-0c2b1d2e3f40"))

    def test_cancel_after_ship_changes_nothing(self, make_product):
        hammer = make_product(on_hand=5)
        order_id = reserve(hammer, 3)
        on_order_shipped(factories.order_shipped(order_id))

        on_order_cancelled(factories.order_cancelled(order_id))

        assert counters(hammer) == (2, 0)
        assert published("stock.released") == []
