"""Real threads, real transactions: deliveries and cancellations racing over a waiting list
never hand the same unit to two orders, and the counters always equal the ledger."""

import uuid

import pytest

from messaging.consumer import MessageProcessor
from stock.handlers import HANDLERS
from stock.models import Backorder, Reservation
from stock.selectors import stock_ledger_mismatches
from tests import factories
from tests.factories import all_at_once, as_body, stock_by_warehouse

pytestmark = pytest.mark.django_db(transaction=True)


def handle(envelope):
    processor = MessageProcessor(consumer="inventory", handlers=HANDLERS, max_attempts=3)
    outcome = processor.process(as_body(envelope))
    assert outcome.action == "ack"


def statuses(envelopes):
    by_id = dict(Reservation.objects.values_list("order_id", "status"))
    return [by_id[uuid.UUID(e.data["order_id"])] for e in envelopes]


def test_two_deliveries_at_once_never_allocate_the_same_units_twice(make_product):
    hammer = make_product(on_hand=0, allow_backorder=True)
    envelopes = [factories.order_created([(hammer.pk, 1)]) for _ in range(10)]
    for envelope in envelopes:
        handle(envelope)

    for _ in range(3):
        all_at_once(lambda units: factories.add_stock(hammer.pk, units), [2, 2])

    assert statuses(envelopes) == ["RESERVED"] * 10
    assert stock_by_warehouse(hammer.pk) == {"default": (12, 10)}
    assert Backorder.objects.count() == 0
    assert stock_ledger_mismatches() == []


def test_racing_deliveries_serve_in_arrival_order(make_product):
    hammer = make_product(on_hand=0, allow_backorder=True)
    envelopes = [factories.order_created([(hammer.pk, 1)]) for _ in range(10)]
    for envelope in envelopes:
        handle(envelope)

    all_at_once(lambda units: factories.add_stock(hammer.pk, units), [1, 2, 3])

    assert statuses(envelopes) == ["RESERVED"] * 6 + ["BACKORDERED"] * 4
    assert stock_by_warehouse(hammer.pk) == {"default": (6, 6)}
    assert Backorder.objects.count() == 4
    assert stock_ledger_mismatches() == []


def test_a_cancellation_racing_a_delivery(make_product):
    hammer = make_product(on_hand=1, allow_backorder=True)
    cancelled = factories.order_created([(hammer.pk, 3)])  # holds 1, misses 2
    others = [factories.order_created([(hammer.pk, 1)]) for _ in range(3)]
    for envelope in [cancelled, *others]:
        handle(envelope)
    cancel = factories.order_cancelled(cancelled.data["order_id"])

    def work(item):
        if item == "cancel":
            handle(cancel)
        else:
            factories.add_stock(hammer.pk, 2)

    all_at_once(work, ["cancel", "deliver"])

    assert statuses([cancelled]) == ["RELEASED"]
    # 3 units in all (1 + 2), the cancelled order's given back: the three others have them
    assert statuses(others) == ["RESERVED"] * 3
    assert stock_by_warehouse(hammer.pk) == {"default": (3, 3)}
    assert Backorder.objects.count() == 0
    assert stock_ledger_mismatches() == []


def test_new_orders_racing_deliveries(make_product):
    """Orders arriving while deliveries serve the list: whatever the interleaving, each unit
    is held once and every order either holds all it asked or waits for the rest."""
    hammer = make_product(on_hand=0, allow_backorder=True)
    nails = make_product(on_hand=0, allow_backorder=True)
    orders = [factories.order_created([(hammer.pk, 1), (nails.pk, 1)]) for _ in range(6)]

    def work(item):
        if isinstance(item, int):
            factories.add_stock(hammer.pk if item % 2 else nails.pk, 2)
        else:
            handle(item)

    all_at_once(work, [*orders, 1, 2, 3, 4])

    assert stock_ledger_mismatches() == []
    reserved = Reservation.objects.filter(status="RESERVED").count()
    assert stock_by_warehouse(hammer.pk)["default"][0] == 4
    for reservation in Reservation.objects.all():
        held = sum(a["quantity"] for a in reservation.allocations)
        waiting = sum(
            Backorder.objects.filter(reservation=reservation).values_list("missing", flat=True)
        )
        assert held + waiting == 2
        assert (reservation.status == "RESERVED") == (waiting == 0)
    assert reserved <= 4


def test_one_return_delivered_twice_at_once_restocks_once(make_product):
    """Two copies under different message ids, on two connections: the return's id decides."""
    hammer = make_product(on_hand=0, allow_backorder=True)
    waiting = factories.order_created([(hammer.pk, 2)])
    handle(waiting)
    order_id = str(uuid.uuid4())
    copies = [
        factories.return_received(order_id, 11, "default", [(hammer.pk, 2, 1)]) for _ in range(2)
    ]
    assert copies[0].id != copies[1].id

    all_at_once(handle, copies)

    assert stock_by_warehouse(hammer.pk) == {"default": (2, 2)}
    assert statuses([waiting]) == ["RESERVED"]
    assert stock_ledger_mismatches() == []
