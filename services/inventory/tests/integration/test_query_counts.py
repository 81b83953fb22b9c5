"""The order.created handler stays a fixed handful of statements, however many lines an order has.

The consumer wraps the handlers of a batch in one transaction (BEGIN, inbox INSERT, ..., COMMIT);
these counts are the handler's own.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from stock.handlers import on_order_created, on_order_created_batch
from stock.models import Reservation
from tests import factories

pytestmark = pytest.mark.django_db

# SELECT … FOR UPDATE of the levels; one statement that inserts the reservation (unless the
# order has one), adds to the counters and writes the ledger; INSERT into the outbox.
# It was 6 before: a SELECT of the reservation, then UPDATE, ledger INSERT and reservation
# INSERT as statements of their own.
RESERVE_STATEMENTS = 3


def statements(run):
    """The SQL the handler ran while ``run()`` ran."""
    with CaptureQueriesContext(connection) as context:
        run()
    return [q["sql"] for q in context.captured_queries]


@pytest.mark.parametrize("line_count", [1, 3, 10])
def test_reserving_an_order(make_product, line_count):
    products = [make_product(on_hand=10) for _ in range(line_count)]
    envelope = factories.order_created([(p.pk, 1) for p in products])

    sql = statements(lambda: on_order_created(envelope))

    assert len(sql) == RESERVE_STATEMENTS, sql
    lock, write, outbox = sql
    assert "FOR UPDATE" in lock
    assert write.startswith("WITH reservation AS (INSERT INTO")
    assert "ON CONFLICT (order_id) DO NOTHING" in write
    assert outbox.startswith("INSERT INTO") and "outbox" in outbox
    reservation = Reservation.objects.get(order_id=envelope.data["order_id"])
    assert reservation.status == Reservation.Status.RESERVED


def test_an_order_split_over_warehouses_costs_the_same(make_product, make_warehouse):
    """Every warehouse's row is in the one lock; every (product, warehouse) in the one write."""
    make_warehouse("east", priority=1)
    products = [make_product(on_hand=2) for _ in range(3)]
    for product in products:
        factories.add_stock(product.pk, 2, "east")
    envelope = factories.order_created([(p.pk, 3) for p in products])  # 2 east + 1 default

    sql = statements(lambda: on_order_created(envelope))

    assert len(sql) == RESERVE_STATEMENTS, sql
    reservation = Reservation.objects.get(order_id=envelope.data["order_id"])
    assert len(reservation.allocations) == 6


def test_orders_of_one_batch_each_cost_the_same(make_product):
    """The consumer applies a batch in one transaction: no statement is saved up for later."""
    products = [make_product(on_hand=10) for _ in range(3)]
    envelopes = [factories.order_created([(p.pk, 1) for p in products]) for _ in range(3)]

    def batch():
        for envelope in envelopes:
            on_order_created(envelope)

    sql = statements(batch)

    assert len(sql) == 3 * RESERVE_STATEMENTS, sql
    assert Reservation.objects.filter(status=Reservation.Status.RESERVED).count() == 3


def test_rejecting_an_order(make_product):
    products = [make_product(on_hand=1) for _ in range(5)]
    envelope = factories.order_created([(p.pk, 2) for p in products])

    # SELECT … FOR UPDATE levels, INSERT reservation, INSERT outbox.
    assert len(statements(lambda: on_order_created(envelope))) == 3


def test_an_order_seen_before(make_product):
    product = make_product(on_hand=10)
    envelope = factories.order_created([(product.pk, 1)])
    on_order_created(envelope)

    # SELECT … FOR UPDATE levels, the write that finds the order's reservation, SELECT it.
    assert len(statements(lambda: on_order_created(envelope))) == 3


def test_each_low_stock_alert_adds_its_event(make_product):
    product = make_product(on_hand=10, low_stock_threshold=5)
    envelope = factories.order_created([(product.pk, 6)])

    assert len(statements(lambda: on_order_created(envelope))) == RESERVE_STATEMENTS + 1


def test_a_backordered_order_adds_one_insert_of_its_waiting_rows(make_product):
    """Short of products that allow backorders: the same lock and write (it holds what there
    is), then one INSERT of its waiting rows, then its event (stock.backordered)."""
    hammer = make_product(on_hand=1, allow_backorder=True)
    nails = make_product(on_hand=0, allow_backorder=True)
    envelope = factories.order_created([(hammer.pk, 3), (nails.pk, 2)])

    sql = statements(lambda: on_order_created(envelope))

    assert len(sql) == RESERVE_STATEMENTS + 1, sql
    lock, write, waiting, outbox = sql
    assert "FOR UPDATE" in lock
    assert write.startswith("WITH reservation AS (INSERT INTO")
    assert waiting.startswith('INSERT INTO "stock_backorder"')
    assert outbox.startswith("INSERT INTO") and "outbox" in outbox
    reservation = Reservation.objects.get(order_id=envelope.data["order_id"])
    assert reservation.status == Reservation.Status.BACKORDERED


def test_a_batch_pays_the_waiting_rows_insert_once(make_product):
    """Several orders of one batch backorder: still one INSERT of all their waiting rows."""
    hammer = make_product(on_hand=0, allow_backorder=True)
    envelopes = [factories.order_created([(hammer.pk, 1)]) for _ in range(4)]

    sql = statements(lambda: on_order_created_batch(envelopes))

    # lock, write, waiting rows, one outbox row per order
    assert len(sql) == 3 + len(envelopes), sql
    assert Reservation.objects.filter(status=Reservation.Status.BACKORDERED).count() == 4
