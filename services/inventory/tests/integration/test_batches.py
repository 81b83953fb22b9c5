"""order.created in batches: what one order at a time would decide, at the cost of one.

The consumer hands a run of order.created to ``on_order_created_batch``: one lock of every
product's counters, one statement writing every reservation, counter and ledger entry, then an
outbox row per event.
"""

import json
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging.consumer import Item, MessageProcessor, Outcome
from messaging.envelope import decode
from messaging.models import InboxMessage, OutboxMessage
from service_runtime import query_plans
from service_runtime.query_plans import statements as recorded_statements
from stock import services
from stock.handlers import HANDLERS
from stock.models import Reservation, StockLevel
from stock.selectors import stock_ledger_mismatches
from tests import factories
from tests.factories import all_at_once, as_body, published

pytestmark = pytest.mark.django_db


def processor() -> MessageProcessor:
    return MessageProcessor(consumer="inventory", handlers=HANDLERS, max_attempts=3)


def process_batch(envelopes, attempt=1):
    return processor().process_batch([Item(as_body(e), attempt) for e in envelopes])


def actions(outcomes: list[Outcome]) -> list[str]:
    return [outcome.action for outcome in outcomes]


def status_of(envelope) -> str:
    return Reservation.objects.get(order_id=envelope.data["order_id"]).status


def counters(product) -> tuple[int, int]:
    level = StockLevel.objects.get(product=product)
    return level.on_hand, level.reserved


class TestStatements:
    """A fixed number of statements per batch, the outbox's one INSERT included."""

    def statements(self, products, size):
        envelopes = [
            factories.order_created([(p.pk, 1) for p in products[n % 3 : n % 3 + 2]])
            for n in range(size)
        ]
        rows = OutboxMessage.objects.count()
        with CaptureQueriesContext(connection) as context:
            assert actions(process_batch(envelopes)) == ["ack"] * size
        # NOTIFY aside: sent once per transaction, it depends on what ran before in the test's
        sql = [q["sql"] for q in context.captured_queries if not q["sql"].startswith("NOTIFY")]
        outbox = [s for s in sql if s.startswith("INSERT INTO") and "outbox" in s]
        assert len(outbox) == 1, outbox  # the batch's events together
        return [s for s in sql if s not in outbox], OutboxMessage.objects.count() - rows

    def test_a_batch_of_twenty_costs_what_a_batch_of_two_does(self, make_product):
        products = [make_product(on_hand=100) for _ in range(4)]

        twenty, twenty_events = self.statements(products, 20)
        two, two_events = self.statements(products, 2)

        assert len(twenty) == len(two) == 5, twenty
        savepoint, inbox, lock, write, release = twenty
        assert savepoint.startswith("SAVEPOINT") and release.startswith("RELEASE SAVEPOINT")
        assert "messaging_inbox" in inbox
        assert "FOR UPDATE" in lock
        assert write.startswith("WITH reservation AS (INSERT INTO")
        assert (twenty_events, two_events) == (20, 2)  # stock.reserved, one row each
        assert Reservation.objects.filter(status=Reservation.Status.RESERVED).count() == 22

    def test_the_write_takes_its_rows_as_json_not_as_lists(self, make_product):
        """psycopg dumps a list parameter element by element in Python (2.3 ms for a batch of
        200 orders, against 79 µs for the same rows as JSON): the rows go as two JSON texts."""
        products = [make_product(on_hand=100) for _ in range(2)]
        envelopes = [
            factories.order_created([(products[0].pk, 1), (products[1].pk, 2)]) for _ in range(3)
        ]
        with recorded_statements() as run:
            assert actions(process_batch(envelopes)) == ["ack"] * 3
        writes = [params for sql, params in run if sql.startswith("WITH reservation AS")]
        assert len(writes) == 1
        (params,) = writes
        assert [name for name, value in params.items() if isinstance(value, list | tuple)] == []
        reservations, wanted = json.loads(params["reservations"]), json.loads(params["wanted"])
        assert [row[0] for row in reservations] == [e.data["order_id"] for e in envelopes]
        assert len(wanted) == 6  # two lines an order, each from one warehouse
        assert counters(products[0]) == (100, 3) and counters(products[1]) == (100, 6)

    def test_the_lock_and_the_write_run_prepared_on_generic_plans(self, make_product):
        """Planned on every call they cost PostgreSQL more than their work: each is prepared
        once per connection and runs on one plan, made for no values in particular."""
        products = [make_product(on_hand=100) for _ in range(2)]

        for size in (3, 1):
            envelopes = [factories.order_created([(products[0].pk, 1)]) for _ in range(size)]
            before = query_plans.plans_of("SELECT s.product_id", "WITH reservation AS")
            assert actions(process_batch(envelopes)) == ["ack"] * size
            after = query_plans.plans_of("SELECT s.product_id", "WITH reservation AS")
            assert sorted(after) == ["SELECT s.product_id", "WITH reservation AS"]
            for text, (generic, custom) in after.items():
                assert custom == 0
                assert generic == before.get(text, (0, 0))[0] + 1
        assert counters(products[0]) == (100, 4)


@pytest.mark.usefixtures("either_stock_path")
class TestAsOneAtATime:
    """The same orders decided in one batch or one by one, on two identical sets of products."""

    ORDERS = [  # (product index, quantity) lines; products: 0 with 5 units, 1 with 2
        [(0, 2)],
        [(0, 2), (1, 1)],
        [(0, 2)],  # 1 left: rejected
        [(0, 1), (1, 2)],  # 1 of product 1 left: rejected, and its unit of product 0 kept
        [(0, 1)],  # the last unit
        [(1, 1)],  # the last unit
        [(1, 1), (0, 1)],  # none left
    ]

    def run(self, make_product, *, batch):
        products = [make_product(on_hand=5, low_stock_threshold=2), make_product(on_hand=2)]
        envelopes = [
            factories.order_created([(products[i].pk, q) for i, q in lines])
            for lines in self.ORDERS
        ]
        if batch:
            assert actions(process_batch(envelopes)) == ["ack"] * len(envelopes)
        else:
            for envelope in envelopes:
                assert processor().process(as_body(envelope)).action == "ack"
        index = {p.pk: n for n, p in enumerate(products)}
        orders = {e.data["order_id"]: n for n, e in enumerate(envelopes)}
        events = [  # this run's, in the outbox's order, with indexes for ids
            _described(e, orders, index)
            for e in (decode(row.body.encode()) for row in OutboxMessage.objects.order_by("id"))
            if e.data.get("order_id") in orders
            or (e.type == "stock.low" and e.data["product_id"] in index)
        ]
        low = [e for e in published("stock.low") if e.data["product_id"] in index]
        return {
            "statuses": [status_of(e) for e in envelopes],
            "counters": [counters(p) for p in products],
            "events": events,
            "low_causes": [e.causation_id for e in low],
            "envelopes": envelopes,
        }

    def test_a_batch_decides_what_one_order_at_a_time_decides(self, make_product):
        alone = self.run(make_product, batch=False)
        together = self.run(make_product, batch=True)

        assert (
            together["statuses"]
            == alone["statuses"]
            == [
                "RESERVED",
                "RESERVED",
                "REJECTED",
                "REJECTED",
                "RESERVED",
                "RESERVED",
                "REJECTED",
            ]
        )
        assert together["counters"] == alone["counters"] == [(5, 5), (2, 2)]
        assert together["events"] == alone["events"]
        assert together["events"] == [
            ("stock.reserved", 0, [(0, 2)]),
            ("stock.reserved", 1, [(0, 2), (1, 1)]),
            # product 0 went under its threshold of 2 with the second order
            ("stock.low", None, [(0, 1)]),
            ("stock.rejected", 2, [(0, 1)]),
            ("stock.rejected", 3, [(1, 1)]),
            ("stock.reserved", 4, [(0, 1)]),
            ("stock.reserved", 5, [(1, 1)]),
            ("stock.rejected", 6, [(0, 0), (1, 0)]),  # in product id order
        ]
        assert together["low_causes"] == [together["envelopes"][1].id]
        assert alone["low_causes"] == [alone["envelopes"][1].id]
        assert stock_ledger_mismatches() == []


def _described(event, orders, index):
    """An event with the indexes of its order and products instead of their ids; its lines as
    (product, quantity reserved, or what was available when rejected)."""
    data = event.data
    if event.type == "stock.low":
        return (event.type, None, [(index[data["product_id"]], data["available"])])
    lines = [
        (index.get(line["product_id"]), line.get("quantity", line.get("available")))
        for line in data["lines"]
    ]
    return (event.type, orders[data["order_id"]], lines)


class TestDuplicates:
    def test_the_same_order_twice_in_a_batch_is_reserved_once(self, make_product):
        hammer = make_product(on_hand=10)
        order_id = str(uuid.uuid4())
        first = factories.order_created([(hammer.pk, 3)], order_id=order_id)
        again = factories.order_created([(hammer.pk, 3)], order_id=order_id)  # a new message id
        other = factories.order_created([(hammer.pk, 1)])

        outcomes = process_batch([first, other, again, first])

        assert actions(outcomes) == ["ack"] * 4
        assert counters(hammer) == (10, 4)
        assert len(published("stock.reserved")) == 2
        assert InboxMessage.objects.count() == 3  # first, other, again
        assert stock_ledger_mismatches() == []

    def test_an_order_cancelled_before_it_came_is_left_alone_and_the_rest_reserved(
        self, make_product
    ):
        hammer = make_product(on_hand=10)
        early = factories.order_created([(hammer.pk, 8)])
        cancelled = factories.order_cancelled(early.data["order_id"])
        assert processor().process(as_body(cancelled)).action == "ack"  # a tombstone
        before, after = (factories.order_created([(hammer.pk, 5)]) for _ in range(2))

        outcomes = process_batch([before, early, after])

        # the batch counted the cancelled order, so it was applied again one at a time
        assert actions(outcomes) == ["ack"] * 3
        assert [status_of(e) for e in (before, early, after)] == [
            "RESERVED",
            "CANCELLED",
            "RESERVED",
        ]
        assert counters(hammer) == (10, 10)
        assert [e.data["order_id"] for e in published("stock.reserved")] == [
            before.data["order_id"],
            after.data["order_id"],
        ]


class TestFailures:
    def test_a_failing_order_is_retried_alone_and_the_others_reserved(
        self, make_product, monkeypatch
    ):
        hammer = make_product(on_hand=10)
        good, bad, also_good = (factories.order_created([(hammer.pk, 2)]) for _ in range(3))
        publish = services.publish_event

        def failing_for_bad(event_type, data, **kwargs):
            if data.get("order_id") == bad.data["order_id"]:
                raise RuntimeError("outbox unavailable for this one")
            return publish(event_type, data, **kwargs)

        monkeypatch.setattr(services, "publish_event", failing_for_bad)

        outcomes = process_batch([good, bad, also_good], attempt=1)

        assert actions(outcomes) == ["ack", "retry", "ack"]
        assert outcomes[1].reason.startswith("RuntimeError: outbox unavailable")
        assert counters(hammer) == (10, 4)
        assert not Reservation.objects.filter(order_id=bad.data["order_id"]).exists()
        assert {str(m) for m in InboxMessage.objects.values_list("message_id", flat=True)} == {
            good.id,
            also_good.id,
        }
        monkeypatch.undo()  # the cause is gone: the retry reserves it
        assert processor().process(as_body(bad), attempt=2).action == "ack"
        assert counters(hammer) == (10, 6)
        assert stock_ledger_mismatches() == []


class CountingProcessor(MessageProcessor):
    """Counts the messages it had to apply one at a time (after its batch fell back)."""

    alone = 0

    def _apply_alone(self, message):
        type(self).alone += 1
        return super()._apply_alone(message)


def process_on_a_counting_processor(envelopes):
    consumer = CountingProcessor("inventory", HANDLERS, max_attempts=3)
    return consumer.process_batch([Item(as_body(e)) for e in envelopes])


@pytest.mark.django_db(transaction=True)
def test_batches_over_the_same_products_in_any_order_never_deadlock(make_product):
    products = [make_product(on_hand=1000) for _ in range(6)]
    rounds, size = 5, 10

    def batch(seed):
        # each order names three products, in an order of its own
        return [
            factories.order_created([(products[(seed + n + k * 5) % 6].pk, 1) for k in range(3)])
            for n in range(size)
        ]

    for round_ in range(rounds):
        results = all_at_once(process_on_a_counting_processor, [batch(round_), batch(round_ + 3)])
        assert actions([outcome for outcomes in results for outcome in outcomes]) == (
            ["ack"] * 2 * size
        )

    assert CountingProcessor.alone == 0  # no batch lost a race and fell back
    reserved = sum(level.reserved for level in StockLevel.objects.all())
    assert reserved == rounds * 2 * size * 3
    assert stock_ledger_mismatches() == []
