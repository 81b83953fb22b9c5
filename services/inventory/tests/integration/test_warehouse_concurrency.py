"""Real threads, real transactions, stock in two warehouses: the last units go to exactly as
many orders as they fill, and transfers racing reservations never oversell a warehouse."""

from collections import Counter

import pytest
from django.core.exceptions import ValidationError

from messaging.consumer import Item, MessageProcessor
from stock.handlers import HANDLERS
from stock.models import Reservation, StockLedgerEntry, StockLevel
from stock.selectors import reserved_units, stock_ledger_mismatches
from stock.services import stock_transfer
from tests import factories
from tests.factories import STAFF_ID, add_stock, all_at_once, as_body, stock_by_warehouse

pytestmark = pytest.mark.django_db(transaction=True)

CONSUMERS = 20  # each its own thread and connection, released together
BATCH = 10  # orders each consumer holds at once: 200 orders in all


def consume(envelopes):
    """One consumer's batch, in one transaction; the outcomes' actions."""
    processor = MessageProcessor(consumer="inventory", handlers=HANDLERS, max_attempts=3)
    outcomes = processor.process_batch([Item(as_body(e)) for e in envelopes])
    return [outcome.action for outcome in outcomes]


def transferred(product_id, source, destination, quantity):
    """Whether staff moved the units; False if refused: too few available at the source."""
    try:
        stock_transfer(
            product_id=product_id,
            source=source,
            destination=destination,
            quantity=quantity,
            reason="rebalance",
            actor_id=STAFF_ID,
            correlation_id="test",
        )
    except ValidationError:
        return False
    return True


def assert_stock_is_sound():
    """No row below zero or over-reserved; counters equal to the ledger and to what the
    reservations hold, warehouse by warehouse."""
    for level in StockLevel.objects.all():
        assert 0 <= level.reserved <= level.on_hand, level
    assert stock_ledger_mismatches() == []
    held = reserved_units()
    assert {k: v for k, v in held.items() if v} == {
        (level.product_id, level.warehouse_id): level.reserved
        for level in StockLevel.objects.all()
        if level.reserved
    }


def test_two_hundred_orders_for_the_last_units_of_two_warehouses(make_product, make_warehouse):
    """5 units in each warehouse, orders of 2: exactly 5 orders fit, and one of them must take
    the last unit of each warehouse."""
    make_warehouse("east")
    hammer = make_product(on_hand=5)
    add_stock(hammer.pk, 5, "east")
    batches = [
        [factories.order_created([(hammer.pk, 2)]) for _ in range(BATCH)] for _ in range(CONSUMERS)
    ]

    results = all_at_once(consume, batches)

    assert [action for actions in results for action in actions] == ["ack"] * 200
    statuses = list(Reservation.objects.values_list("status", flat=True))
    assert (statuses.count("RESERVED"), statuses.count("REJECTED")) == (5, 195)
    assert stock_by_warehouse(hammer.pk) == {"default": (5, 5), "east": (5, 5)}
    reserved = Reservation.objects.filter(status="RESERVED")
    assert sorted(len(r.allocations) for r in reserved) == [1, 1, 1, 1, 2]  # one split
    assert_stock_is_sound()


def test_transfers_racing_reservations_never_oversell_a_warehouse(make_product, make_warehouse):
    """10 units in each warehouse; 16 orders of one unit, and transfers of 3 units both ways,
    all at once: they compete for the last 4 units. An oversold source would break a CHECK
    constraint (an error in its thread) or the ledger."""
    make_warehouse("east", priority=1)
    hammer = make_product(on_hand=10)
    add_stock(hammer.pk, 10, "east")

    def move(source, destination):
        return (source, destination) if transferred(hammer.pk, source, destination, 3) else None

    orders = [[factories.order_created([(hammer.pk, 1)]) for _ in range(2)] for _ in range(8)]
    work = [
        *(lambda batch=batch: consume(batch) for batch in orders),
        *(lambda: move("default", "east") for _ in range(6)),
        *(lambda: move("east", "default") for _ in range(6)),
    ]

    results = all_at_once(lambda job: job(), work)

    moved = Counter(result for result in results if isinstance(result, tuple))
    assert set(Reservation.objects.values_list("status", flat=True)) == {"RESERVED"}
    assert Reservation.objects.count() == 16
    net = 3 * (moved["east", "default"] - moved["default", "east"])
    stock = stock_by_warehouse(hammer.pk)
    assert (stock["default"][0], stock["east"][0]) == (10 + net, 10 - net)
    assert stock["default"][1] + stock["east"][1] == 16
    assert_stock_is_sound()


def test_batches_and_transfers_over_the_same_rows_in_any_order_never_deadlock(
    make_product, make_warehouse
):
    """Batches naming the same products in different orders, and transfers both ways between
    the same warehouses, all at once: every row is locked in (product, warehouse) order, so
    nothing waits in a cycle (PostgreSQL would abort one of them: an error in its thread)."""
    make_warehouse("east", priority=1)
    products = [make_product(on_hand=100) for _ in range(4)]
    for product in products:
        add_stock(product.pk, 100, "east")

    def batch(seed):
        # each order names three products, in an order of its own; the first of each batch
        # wants more than one warehouse holds: split, or rejected once the others took some
        return [
            factories.order_created(
                [(products[(seed + n + k) % 4].pk, 120 if n == 0 else 1) for k in range(3)]
            )
            for n in range(BATCH)
        ]

    def move(product, source, destination):
        # refused when a split order took every unit there first
        return ["moved" if transferred(product.pk, source, destination, 1) else "refused"]

    work = [
        *(lambda seed=seed: consume(batch(seed)) for seed in range(6)),
        *(lambda p=p: move(p, "default", "east") for p in products),
        *(lambda p=p: move(p, "east", "default") for p in products),
    ]

    results = all_at_once(lambda job: job(), work)

    actions = [action for actions in results for action in actions]
    assert actions.count("ack") == 6 * BATCH
    assert actions.count("moved") + actions.count("refused") == 8
    assert Reservation.objects.filter(status="RESERVED").count() >= 6 * (BATCH - 1)
    assert_stock_is_sound()


def outcomes_of(envelopes):
    """One message's outcome, with its reason, in its own transaction."""
    processor = MessageProcessor(consumer="inventory", handlers=HANDLERS, max_attempts=3)
    [outcome] = processor.process_batch([Item(as_body(e)) for e in envelopes])
    return outcome


def test_a_shipment_racing_a_cancel_never_ships_released_units(make_product, make_warehouse):
    """Part of an order shipped from one warehouse while the order is cancelled: whichever
    comes first, the other sees it. Shipped first: the cancel releases only the rest. Cancelled
    first: the shipment ships nothing. Never both for the same units."""
    make_warehouse("east", priority=5)
    outcomes: Counter[str] = Counter()
    for _ in range(10):
        hammer = make_product()  # 3 in east, 2 in default: the order takes both
        add_stock(hammer.pk, 3, "east")
        add_stock(hammer.pk, 2, None)
        created = factories.order_created([(hammer.pk, 5)])
        order_id = created.data["order_id"]
        assert consume([created]) == ["ack"]
        shipment = factories.order_shipment(order_id, 1, "east", [(hammer.pk, 3)])
        cancel = factories.order_cancelled(order_id)

        results = all_at_once(outcomes_of, [[shipment], [cancel]])

        assert [o.action for o in results] == ["ack", "ack"], results
        status = Reservation.objects.get(order_id=order_id).status
        entries = StockLedgerEntry.objects.filter(order_id=order_id)
        shipped = -sum(e.delta_on_hand for e in entries.filter(kind="ship"))
        released = -sum(e.delta_reserved for e in entries.filter(kind="release"))
        if shipped:  # the shipment first: the cancel gave back the 2 in default
            assert (shipped, released) == (3, 2)
        else:  # the cancel first: all 5 given back, nothing left
            assert released == 5
        assert status == Reservation.Status.RELEASED
        assert stock_by_warehouse(hammer.pk)["east"][1] == 0
        assert stock_by_warehouse(hammer.pk)["default"][1] == 0
        outcomes["shipped first" if shipped else "cancelled first"] += 1
        assert_stock_is_sound()
    assert sum(outcomes.values()) == 10
