import pytest

from messaging.consumer import MessageProcessor
from stock.handlers import HANDLERS
from stock.models import Reservation, StockLedgerEntry, StockLevel
from tests import factories
from tests.factories import as_body, published

pytestmark = pytest.mark.django_db


@pytest.fixture
def processor():
    return MessageProcessor(consumer="inventory", handlers=HANDLERS, max_attempts=3)


class TestDuplicateDelivery:
    def test_the_same_order_created_twice_reserves_once(self, processor, make_product):
        hammer = make_product(on_hand=5)
        body = as_body(factories.order_created([(hammer.pk, 2)]))

        outcomes = [processor.process(body), processor.process(body)]

        assert [o.action for o in outcomes] == ["ack", "ack"]
        assert StockLevel.objects.get(product=hammer).reserved == 2
        assert StockLedgerEntry.objects.filter(kind="reserve").count() == 1
        assert len(published("stock.reserved")) == 1

    def test_the_same_order_cancelled_ten_times_releases_once(self, processor, make_product):
        hammer = make_product(on_hand=5)
        created = factories.order_created([(hammer.pk, 2)])
        processor.process(as_body(created))
        body = as_body(factories.order_cancelled(created.data["order_id"]))

        for _ in range(10):
            assert processor.process(body).action == "ack"

        assert StockLevel.objects.get(product=hammer).reserved == 0
        assert StockLedgerEntry.objects.filter(kind="release").count() == 1
        assert len(published("stock.released")) == 1


class TestMessagesThatCanNeverSucceed:
    def test_shipping_an_unknown_order_is_dead_lettered_without_effect(self, processor):
        body = as_body(factories.order_shipped("6b1f7f3e-4d7e-4a53-9b62-0c2b1d2e3f40"))

        outcome = processor.process(body)

        assert outcome.action == "dead"
        assert "never reserved" in outcome.reason
        assert not Reservation.objects.exists()

    def test_a_malformed_order_is_dead_lettered(self, processor):
        assert processor.process(b'{"type": "order.created"}').action == "dead"
