import uuid

import pytest

from stock.handlers import on_order_created
from stock.models import Reservation, StockLedgerEntry, StockLevel
from stock.selectors import stock_ledger_mismatches
from stock.services import stock_reserve
from tests import factories
from tests.factories import published

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("either_stock_path")]


def level(product):
    return StockLevel.objects.get(product=product)


def order_created_returning(envelope):
    """What ``stock_reserve`` answers for an order.created, as the handler calls it."""
    data = envelope.data
    return stock_reserve(
        order_id=data["order_id"], user_id=data["user_id"], lines=data["lines"], causation=envelope
    )


class TestReserveAllLines:
    def test_reserves_every_line_and_announces_it(self, make_product):
        hammer, nails = make_product(on_hand=5), make_product(on_hand=100)
        envelope = factories.order_created([(hammer.pk, 2), (nails.pk, 40)])

        on_order_created(envelope)

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

        on_order_created(envelope)

        entry = StockLedgerEntry.objects.get(product=hammer, kind="reserve")
        assert (entry.delta_on_hand, entry.delta_reserved) == (0, 3)
        assert str(entry.order_id) == envelope.data["order_id"]

    def test_the_ledger_of_every_line_agrees_with_the_counters(self, make_product):
        products = [make_product(on_hand=10) for _ in range(3)]
        envelope = factories.order_created([(p.pk, n) for n, p in enumerate(products, start=1)])

        reservation = order_created_returning(envelope)

        entries = StockLedgerEntry.objects.filter(kind="reserve").order_by("product_id")
        assert [(e.product_id, e.delta_on_hand, e.delta_reserved) for e in entries] == [
            (p.pk, 0, n) for n, p in enumerate(products, start=1)
        ]
        assert {str(e.order_id) for e in entries} == {envelope.data["order_id"]}
        assert [level(p).reserved for p in products] == [1, 2, 3]
        assert stock_ledger_mismatches() == []
        assert reservation == Reservation.objects.get(order_id=envelope.data["order_id"])
        assert reservation.status == Reservation.Status.RESERVED


class TestRejectWholeOrder:
    def test_one_short_line_reserves_nothing_at_all(self, make_product):
        hammer, nails = make_product(on_hand=5), make_product(on_hand=3)
        envelope = factories.order_created([(hammer.pk, 2), (nails.pk, 4)])

        on_order_created(envelope)

        assert (level(hammer).on_hand, level(hammer).reserved) == (5, 0)
        assert (level(nails).on_hand, level(nails).reserved) == (3, 0)
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

        on_order_created(envelope)

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

    def test_an_unknown_product_rejects_the_order(self, make_product):
        hammer = make_product(on_hand=5)
        unknown_id = hammer.pk + 1000
        envelope = factories.order_created([(hammer.pk, 1), (unknown_id, 1)])

        on_order_created(envelope)

        assert level(hammer).reserved == 0
        assert not StockLedgerEntry.objects.filter(kind="reserve").exists()
        reservation = Reservation.objects.get(order_id=envelope.data["order_id"])
        assert reservation.status == Reservation.Status.REJECTED
        assert f"product {unknown_id}: unknown product" in reservation.reason
        [event] = published("stock.rejected")
        assert event.data["lines"] == [
            {"product_id": unknown_id, "requested": 1, "available": 0, "reason": "unknown product"}
        ]
        assert published("stock.reserved") == []

    def test_available_is_what_others_have_not_reserved(self, make_product):
        hammer = make_product(on_hand=5)
        on_order_created(factories.order_created([(hammer.pk, 4)]))

        on_order_created(factories.order_created([(hammer.pk, 2)]))

        [event] = published("stock.rejected")
        assert event.data["lines"][0]["available"] == 1
        assert level(hammer).reserved == 4


class TestOrderAlreadySeen:
    def test_order_created_again_with_a_new_message_id_changes_nothing(self, make_product):
        hammer = make_product(on_hand=5)
        order_id = str(uuid.uuid4())
        on_order_created(factories.order_created([(hammer.pk, 2)], order_id=order_id))

        on_order_created(factories.order_created([(hammer.pk, 2)], order_id=order_id))

        assert level(hammer).reserved == 2
        assert len(published("stock.reserved")) == 1

    def test_order_created_again_when_its_stock_is_gone_is_not_rejected(self, make_product):
        hammer = make_product(on_hand=5)
        envelope = factories.order_created([(hammer.pk, 4)])
        on_order_created(envelope)

        again = order_created_returning(envelope)

        assert again.status == Reservation.Status.RESERVED
        assert level(hammer).reserved == 4
        assert StockLedgerEntry.objects.filter(kind="reserve").count() == 1
        assert len(published("stock.reserved")) == 1
        assert published("stock.rejected") == []

    def test_a_rejected_order_created_again_is_rejected_once(self, make_product):
        hammer = make_product(on_hand=1)
        envelope = factories.order_created([(hammer.pk, 2)])
        on_order_created(envelope)

        again = order_created_returning(envelope)

        assert again.status == Reservation.Status.REJECTED
        assert len(published("stock.rejected")) == 1
