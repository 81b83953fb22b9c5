"""The order.created handler stays a fixed handful of queries, however many lines an order has."""

import pytest

from stock.handlers import order_created
from tests import factories

pytestmark = pytest.mark.django_db

# SELECT reservation, SELECT … FOR UPDATE levels, UPDATE levels, INSERT ledger,
# INSERT reservation, INSERT outbox + NOTIFY.
RESERVE_QUERIES = 7


@pytest.mark.parametrize("line_count", [1, 10])
def test_reserving_an_order(make_product, django_assert_num_queries, line_count):
    products = [make_product(on_hand=10) for _ in range(line_count)]
    envelope = factories.order_created([(p.pk, 1) for p in products])

    with django_assert_num_queries(RESERVE_QUERIES):
        order_created(envelope)


def test_rejecting_an_order(make_product, django_assert_num_queries):
    products = [make_product(on_hand=1) for _ in range(5)]
    envelope = factories.order_created([(p.pk, 2) for p in products])

    # SELECT reservation, SELECT … FOR UPDATE levels, INSERT reservation, INSERT outbox + NOTIFY.
    with django_assert_num_queries(5):
        order_created(envelope)


def test_each_low_stock_alert_adds_its_event(make_product, django_assert_num_queries):
    product = make_product(on_hand=10, low_stock_threshold=5)
    envelope = factories.order_created([(product.pk, 6)])

    with django_assert_num_queries(RESERVE_QUERIES + 2):
        order_created(envelope)
