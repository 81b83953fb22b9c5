import uuid

import pytest

from stock.handlers import order_created
from stock.models import Reservation, StockLedgerEntry, StockLevel
from tests import factories
from tests.factories import published

pytestmark = pytest.mark.django_db


def level(product):
    return StockLevel.objects.get(product=product)


class TestReserveAllLines:
    def test_reserves_every_line_and_announces_it(self, make_product):
        hammer, nails = make_product(on_hand=5), make_product(on_hand=100)
        envelope = factories.order_created([(hammer.pk, 2), (nails.pk, 40)])

        order_created(envelope)

        assert (level(hammer).on_hand, level(hammer).reserved) == (5, 2)
        assert (level(nails).on_hand, level(nails).reserved) == (100, 40)
        reservation = Reservation.objects.get(order_id=envelope.data["order_id"])
        assert reservation.status == Reservation.Status.RESERVED
        assert reservation.quantities() == {hammer.pk: 2, nails.pk: 40}
        [event] = published("stock.reserved")
        assert event.data == {
            "order_id": envelope.data["order_id"],
            "lines": [
                {"product_id": hammer.pk, "quantity": 2},
                {"product_id": nails.pk, "quantity": 40},
            ],
        }
        assert event.correlation_id == envelope.correlation_id
        assert event.causation_id == envelope.id

    def test_writes_one_ledger_entry_per_product(self, make_product):
        hammer = make_product(on_hand=5)
        envelope = factories.order_created([(hammer.pk, 1), (hammer.pk, 2)])

        order_created(envelope)

        entry = StockLedgerEntry.objects.get(product=hammer, kind="reserve")
        assert (entry.delta_on_hand, entry.delta_reserved) == (0, 3)
        assert str(entry.order_id) == envelope.data["order_id"]


class TestRejectWholeOrder:
    def test_one_short_line_reserves_nothing_at_all(self, make_product):
        hammer, nails = make_product(on_hand=5), make_product(on_hand=3)
        envelope = factories.order_created([(hammer.pk, 2), (nails.pk, 4)])

        order_created(envelope)

        assert level(hammer).reserved == 0
        assert level(nails).reserved == 0
        assert not StockLedgerEntry.objects.filter(kind="reserve").exists()
        reservation = Reservation.objects.get(order_id=envelope.data["order_id"])
        assert reservation.status == Reservation.Status.REJECTED
        assert published("stock.reserved") == []

    def test_says_why_for_each_failing_line(self, make_product):
        short = make_product(on_hand=3)
        retired = make_product(on_hand=10, active=False)
        fine = make_product(on_hand=10)
        unknown_id = retired.pk + 1000
        envelope = factories.order_created(
            [(short.pk, 4), (retired.pk, 1), (fine.pk, 1), (unknown_id, 2)]
        )

        order_created(envelope)

        [event] = published("stock.rejected")
        assert event.data["lines"] == [
            {"product_id": short.pk, "requested": 4, "available": 3, "reason": "only 3 available"},
            {
                "product_id": retired.pk,
                "requested": 1,
                "available": 10,
                "reason": "product is inactive",
            },
            {"product_id": unknown_id, "requested": 2, "available": 0, "reason": "unknown product"},
        ]
        assert event.data["reason"].startswith("3 of 4 lines cannot be reserved: ")
        assert f"product {short.pk}: only 3 available" in event.data["reason"]

    def test_available_is_what_others_have_not_reserved(self, make_product):
        hammer = make_product(on_hand=5)
        order_created(factories.order_created([(hammer.pk, 4)]))

        order_created(factories.order_created([(hammer.pk, 2)]))

        [event] = published("stock.rejected")
        assert event.data["lines"][0]["available"] == 1
        assert level(hammer).reserved == 4


class TestOrderAlreadySeen:
    def test_order_created_again_with_a_new_message_id_changes_nothing(self, make_product):
        hammer = make_product(on_hand=5)
        order_id = str(uuid.uuid4())
        order_created(factories.order_created([(hammer.pk, 2)], order_id=order_id))

        order_created(factories.order_created([(hammer.pk, 2)], order_id=order_id))

        assert level(hammer).reserved == 2
        assert len(published("stock.reserved")) == 1
