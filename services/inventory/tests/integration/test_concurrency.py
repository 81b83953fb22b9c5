"""Real threads, real transactions: the last units go to exactly as many orders as they fill."""

import uuid

import pytest

from messaging.consumer import MessageProcessor
from messaging.models import OutboxMessage
from stock.handlers import HANDLERS
from stock.models import Reservation, StockLedgerEntry, StockLevel
from stock.selectors import stock_ledger_mismatches
from tests import factories
from tests.factories import all_at_once, as_body

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 20


def process_all_at_once(bodies):
    """Each body on its own thread and connection, released together; returns the outcomes."""
    processor = MessageProcessor(consumer="inventory", handlers=HANDLERS, max_attempts=3)
    return all_at_once(processor.process, bodies)


def statuses():
    return sorted(Reservation.objects.values_list("status", flat=True))


def test_twenty_orders_for_the_last_five_units_reserve_exactly_five(make_product):
    hammer = make_product(on_hand=5)
    bodies = [as_body(factories.order_created([(hammer.pk, 1)])) for _ in range(THREADS)]

    outcomes = process_all_at_once(bodies)

    assert [o.action for o in outcomes] == ["ack"] * THREADS
    assert statuses() == ["REJECTED"] * 15 + ["RESERVED"] * 5
    stock = StockLevel.objects.get(product=hammer)
    assert (stock.on_hand, stock.reserved) == (5, 5)
    assert stock_ledger_mismatches() == []


def test_one_order_delivered_on_many_threads_at_once_reserves_once(make_product):
    """Each copy has its own message id, so only the reservation's unique order id stops it."""
    hammer, nails = make_product(on_hand=10), make_product(on_hand=10)
    order_id = str(uuid.uuid4())
    bodies = [
        as_body(factories.order_created([(hammer.pk, 3), (nails.pk, 3)], order_id=order_id))
        for _ in range(THREADS)
    ]

    outcomes = process_all_at_once(bodies)

    assert [o.action for o in outcomes] == ["ack"] * THREADS
    assert statuses() == ["RESERVED"]
    assert [s.reserved for s in StockLevel.objects.order_by("product_id")] == [3, 3]
    assert StockLedgerEntry.objects.filter(kind="reserve").count() == 2
    assert OutboxMessage.objects.filter(routing_key="stock.reserved").count() == 1
    assert stock_ledger_mismatches() == []


def test_orders_locking_products_in_opposite_orders_do_not_deadlock(make_product):
    left, right = make_product(on_hand=10), make_product(on_hand=10)
    bodies = [
        as_body(factories.order_created(lines))
        for n in range(THREADS)
        for lines in [[(left.pk, 1), (right.pk, 1)] if n % 2 else [(right.pk, 1), (left.pk, 1)]]
    ]

    outcomes = process_all_at_once(bodies)

    assert [o.action for o in outcomes] == ["ack"] * THREADS
    assert statuses() == ["REJECTED"] * 10 + ["RESERVED"] * 10
    assert [s.reserved for s in StockLevel.objects.order_by("product_id")] == [10, 10]
    assert stock_ledger_mismatches() == []
