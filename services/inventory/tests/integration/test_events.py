"""Events inventory writes to its outbox, each checked against the shared schema on read."""

import pytest
from django.db import transaction

from catalogue.services import product_update
from stock.handlers import on_order_created
from stock.services import stock_adjust
from tests import factories
from tests.factories import published, published_types

pytestmark = pytest.mark.django_db


class TestProductUpserted:
    def test_every_product_change_is_announced(self, make_product):
        hammer = make_product(sku="HAM-1", name="Hammer")

        product_update(product=hammer, data={"price": "15.00"}, correlation_id="req-1")

        first, second = published("product.upserted")
        assert first.data["price"] == "9.99"
        assert second.data == {
            "product_id": hammer.pk,
            "sku": "HAM-1",
            "name": "Hammer",
            "price": "15.00",
            "active": True,
            "category": None,
        }
        assert second.correlation_id == "req-1"

    def test_an_update_that_changes_nothing_announces_nothing(self, make_product):
        hammer = make_product(name="Hammer")

        product_update(product=hammer, data={"name": "Hammer"}, correlation_id="req-1")

        assert len(published("product.upserted")) == 1

    def test_a_failed_transaction_leaves_no_event(self, make_product):
        hammer = make_product()

        with pytest.raises(RuntimeError), transaction.atomic():
            product_update(product=hammer, data={"name": "Renamed"}, correlation_id="req-1")
            raise RuntimeError("rolled back")

        assert len(published("product.upserted")) == 1


class TestStockLow:
    def test_announced_when_a_reservation_takes_available_under_the_threshold(self, make_product):
        hammer = make_product(on_hand=10, low_stock_threshold=5, sku="HAM-1", name="Hammer")
        envelope = factories.order_created([(hammer.pk, 6)])

        on_order_created(envelope)

        [event] = published("stock.low")
        assert event.data == {
            "product_id": hammer.pk,
            "sku": "HAM-1",
            "name": "Hammer",
            "available": 4,
            "threshold": 5,
        }
        assert event.causation_id == envelope.id
        assert published_types()[-2:] == ["stock.reserved", "stock.low"]

    def test_not_announced_again_while_it_stays_low(self, make_product):
        hammer = make_product(on_hand=10, low_stock_threshold=5)
        on_order_created(factories.order_created([(hammer.pk, 6)]))

        on_order_created(factories.order_created([(hammer.pk, 1)]))

        assert len(published("stock.low")) == 1

    def test_not_announced_while_available_stays_at_the_threshold(self, make_product):
        hammer = make_product(on_hand=10, low_stock_threshold=5)

        on_order_created(factories.order_created([(hammer.pk, 5)]))

        assert published("stock.low") == []

    def test_announced_when_an_adjustment_takes_stock_under_the_threshold(self, make_product):
        hammer = make_product(on_hand=10, low_stock_threshold=5)

        stock_adjust(
            product_id=hammer.pk, delta=-8, reason="broken", actor_id=1, correlation_id="req-9"
        )

        [event] = published("stock.low")
        assert event.data["available"] == 2
        assert event.correlation_id == "req-9"
