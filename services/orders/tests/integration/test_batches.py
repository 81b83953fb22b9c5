"""stock.reserved and stock.rejected in batches: every PENDING order moved by one statement,
each answer still its own outcome, and the guarded transitions as for one answer alone."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging.consumer import Item, MessageProcessor, Outcome
from messaging.envelope import Envelope
from messaging.models import InboxMessage, OutboxMessage
from orders import services
from orders.handlers import HANDLERS
from orders.models import Order, OrderAllocation, OrderLine, OrderStatus
from service_runtime import query_plans
from service_runtime.query_plans import statements as recorded_statements
from tests.factories import body, outbox, stock_event

pytestmark = pytest.mark.django_db

LINES = [{"product_id": 1, "quantity": 2}]
REJECTED_LINES = [{"product_id": 1, "requested": 2, "available": 1, "reason": "only 1 available"}]


@pytest.fixture
def place(products: dict) -> Any:
    def place_one() -> Order:
        lines = [services.LineRequest(product_id=1, quantity=2)]
        return services.order_place(user_id=7, idempotency_key=str(uuid.uuid4()), lines=lines).order

    return place_one


def reserved(order_id: Any) -> Envelope:
    return stock_event("stock.reserved", order_id, lines=LINES)


def rejected(order_id: Any) -> Envelope:
    return stock_event("stock.rejected", order_id, reason="only 1 available", lines=REJECTED_LINES)


def process_batch(envelopes: list[Envelope], attempt: int = 1) -> list[Outcome]:
    processor = MessageProcessor(consumer="orders", handlers=HANDLERS, max_attempts=3)
    return processor.process_batch([Item(body(e), attempt) for e in envelopes])


def actions(outcomes: list[Outcome]) -> list[str]:
    return [outcome.action for outcome in outcomes]


def status_of(order: Order) -> str:
    return Order.objects.get(pk=order.pk).status


def history(order: Order) -> list[tuple[str, str, str]]:
    return [
        (change.from_status, change.to_status, str(change.caused_by_message_id))
        for change in order.status_changes.order_by("at", "id")
    ]


def test_a_batch_of_twenty_answers_moves_its_orders_with_one_statement(place: Any) -> None:
    def statements(size: int) -> tuple[list[str], int]:
        orders = [place() for _ in range(size)]
        answers = [(reserved if n % 3 else rejected)(o.id) for n, o in enumerate(orders)]
        rows = OutboxMessage.objects.count()
        with CaptureQueriesContext(connection) as context:
            assert actions(process_batch(answers)) == ["ack"] * size
        # NOTIFY aside: sent once per transaction, it depends on what ran before in the test's
        sql = [q["sql"] for q in context.captured_queries if not q["sql"].startswith("NOTIFY")]
        events = [s for s in sql if s.startswith("INSERT INTO") and "outbox" in s]
        assert len(events) == 1, events  # the batch's events together
        return [s for s in sql if s not in events], OutboxMessage.objects.count() - rows

    twenty, twenty_events = statements(20)
    two, two_events = statements(2)

    assert len(twenty) == len(two) == 4, twenty
    savepoint, inbox, move, release = twenty
    assert savepoint.startswith("SAVEPOINT") and release.startswith("RELEASE SAVEPOINT")
    assert "messaging_inbox" in inbox
    assert "UPDATE" in move and "jsonb_array_elements" in move  # the answers as JSON rows
    assert (twenty_events, two_events) == (20, 2)  # order.confirmed or order.rejected, each
    assert Order.objects.filter(status=OrderStatus.CONFIRMED).count() == 13 + 1
    assert Order.objects.filter(status=OrderStatus.REJECTED).count() == 7 + 1


def test_the_move_takes_its_rows_as_json_not_as_lists(place: Any) -> None:
    """psycopg dumps a list parameter element by element in Python: the answers and their
    allocations go as two JSON texts, whatever the batch's size."""
    orders = [place() for _ in range(3)]
    answers = [reserved(orders[0].id), rejected(orders[1].id), reserved(orders[2].id)]
    with recorded_statements() as run:
        assert actions(process_batch(answers)) == ["ack"] * 3
    moves = [params for sql, params in run if "jsonb_array_elements" in sql and "UPDATE" in sql]
    assert len(moves) == 1
    (params,) = moves
    assert [name for name, value in params.items() if isinstance(value, list | tuple)] == []
    rows = json.loads(params["answers"])
    assert [row[0] for row in rows] == [str(o.id) for o in orders]
    assert [status_of(o) for o in orders] == ["CONFIRMED", "REJECTED", "CONFIRMED"]


def test_the_move_and_the_orders_insert_run_prepared_on_generic_plans(place: Any) -> None:
    """Planned on every call they cost PostgreSQL more than their work: each is prepared once
    per connection and runs on one plan, made for no values in particular."""

    texts = ("WITH answer AS", "WITH requested AS")
    before = query_plans.plans_of(*texts)
    orders = [place() for _ in range(3)]
    assert actions(process_batch([reserved(o.id) for o in orders[:2]])) == ["ack"] * 2
    assert actions(process_batch([rejected(orders[2].id)])) == ["ack"]
    after = query_plans.plans_of(*texts)
    assert sorted(after) == ["WITH answer AS", "WITH requested AS"]
    assert after["WITH requested AS"][0] == before.get("WITH requested AS", (0, 0))[0] + 3
    assert after["WITH answer AS"][0] == before.get("WITH answer AS", (0, 0))[0] + 2
    assert [custom for _, custom in after.values()] == [0, 0]
    assert [status_of(o) for o in orders] == ["CONFIRMED", "CONFIRMED", "REJECTED"]


@pytest.mark.parametrize("way", ["sql", "orm"])
def test_a_mixed_batch_settles_each_order_as_one_answer_alone_would(
    place: Any, way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    confirm, reject, dead, done, twice = (place() for _ in range(5))
    services.order_cancel(order_id=dead.id, reason="changed my mind")
    Order.objects.filter(pk=done.pk).update(status=OrderStatus.CONFIRMED)
    unknown = uuid.uuid4()
    batch = [
        reserved(confirm.id),
        rejected(reject.id),
        reserved(dead.id),  # the order died meanwhile: its stock is released
        rejected(done.id),  # late: an order never moves backwards
        reserved(unknown),  # never seen here: dead-lettered on its own
        reserved(twice.id),
        rejected(twice.id),  # the first answer of an order decides; this one is late
        reserved(confirm.id),  # inventory said it again, with a new message id
    ]
    if way == "orm":  # as on a database other than PostgreSQL (SQLite's)
        monkeypatch.setattr(connection, "vendor", "sqlite")

    outcomes = process_batch(batch)

    assert actions(outcomes) == ["ack", "ack", "ack", "ack", "dead", "ack", "ack", "ack"]
    assert outcomes[4].reason == f"rejected: stock.reserved for unknown order {unknown}"
    assert [status_of(o) for o in (confirm, reject, dead, done, twice)] == [
        OrderStatus.CONFIRMED,
        OrderStatus.REJECTED,
        OrderStatus.CANCELLED,
        OrderStatus.CONFIRMED,
        OrderStatus.CONFIRMED,
    ]
    assert [(e.type, e.data["order_id"], e.causation_id) for e in outbox()][-4:] == [
        ("order.confirmed", str(confirm.id), batch[0].id),
        ("order.rejected", str(reject.id), batch[1].id),
        ("order.cancelled", str(dead.id), batch[2].id),
        ("order.confirmed", str(twice.id), batch[5].id),
    ]
    stored = Order.objects.get(pk=reject.pk)
    assert (stored.rejection_reason, stored.rejected_lines) == ("only 1 available", REJECTED_LINES)
    assert Order.objects.get(pk=confirm.pk).rejected_lines == []
    assert history(confirm)[1:] == [("PENDING", "CONFIRMED", batch[0].id)]
    assert history(dead)[-1] == ("CANCELLED", "CANCELLED", batch[2].id)
    assert history(twice)[1:] == [("PENDING", "CONFIRMED", batch[5].id)]
    assert str(batch[4].id) not in {
        str(m) for m in InboxMessage.objects.values_list("message_id", flat=True)
    }


def test_a_failing_answer_is_retried_alone_and_the_others_applied(
    place: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    good, bad, also_good = (place() for _ in range(3))
    publish = services.publish_event

    def failing_for_bad(event_type: str, data: dict[str, Any], **kwargs: Any) -> Any:
        if data["order_id"] == str(bad.id):
            raise RuntimeError("outbox unavailable for this one")
        return publish(event_type, data, **kwargs)

    monkeypatch.setattr(services, "publish_event", failing_for_bad)

    outcomes = process_batch([reserved(good.id), reserved(bad.id), rejected(also_good.id)])

    assert actions(outcomes) == ["ack", "retry", "ack"]
    assert [status_of(o) for o in (good, bad, also_good)] == [
        OrderStatus.CONFIRMED,
        OrderStatus.PENDING,
        OrderStatus.REJECTED,
    ]


def test_the_same_message_twice_in_a_batch_is_applied_once(place: Any) -> None:
    order = place()
    answer = reserved(order.id)

    assert actions(process_batch([answer, reserved(place().id), answer])) == ["ack"] * 3

    assert status_of(order) == OrderStatus.CONFIRMED
    assert [e.data["order_id"] for e in outbox("order.confirmed")].count(str(order.id)) == 1
    assert len(history(order)) == 2


def allocated(order: Order) -> list[tuple[int, str, int, int]]:
    return list(
        OrderAllocation.objects.filter(order=order)
        .order_by("id")
        .values_list("product_id", "warehouse", "quantity", "shipped_quantity")
    )


@pytest.mark.parametrize("way", ["sql", "orm"])
def test_a_batch_stores_where_each_confirmed_order_is_held_and_cancels_rejected_lines(
    place: Any, way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    split, older, dead, refused = (place() for _ in range(4))
    services.order_cancel(order_id=dead.id, reason="changed my mind")
    east_west = [
        {"product_id": 1, "warehouse": "wh-east", "quantity": 1},
        {"product_id": 1, "warehouse": "wh-west", "quantity": 1},
    ]
    batch = [
        stock_event("stock.reserved", split.id, lines=LINES, allocations=east_west),
        stock_event("stock.reserved", older.id, lines=LINES, version=1),  # not known
        stock_event("stock.reserved", dead.id, lines=LINES, allocations=east_west[:1] * 2),
        rejected(refused.id),
        # said again, differently: the order is CONFIRMED, so this one is late
        stock_event("stock.reserved", split.id, lines=LINES, allocations=east_west[1:] * 2),
    ]
    if way == "orm":
        monkeypatch.setattr(connection, "vendor", "sqlite")

    with CaptureQueriesContext(connection) as context:
        assert actions(process_batch(batch)) == ["ack"] * 5

    assert allocated(split) == [(1, "wh-east", 1, 0), (1, "wh-west", 1, 0)]
    assert allocated(older) == allocated(dead) == allocated(refused) == []
    assert status_of(dead) == OrderStatus.CANCELLED
    cancelled = OrderLine.objects.filter(order__in=[refused, dead]).values_list(
        "quantity", "cancelled_quantity"
    )
    assert list(cancelled) == [(2, 2), (2, 2)]
    assert OrderLine.objects.get(order=split).cancelled_quantity == 0
    if way == "sql":  # the allocations are written by the statement that moves the orders
        moves = [
            q["sql"]
            for q in context.captured_queries
            if "jsonb_array_elements" in q["sql"] and "messaging_inboxmessage" not in q["sql"]
        ]
        assert len(moves) == 1
        assert '"orders_orderallocation"' in moves[0] and '"orders_orderline"' in moves[0]


def test_a_pair_named_twice_is_held_once_with_both_quantities(place: Any) -> None:
    order = place()
    twice = [{"product_id": 1, "warehouse": "wh-east", "quantity": 1}] * 2

    assert actions(
        process_batch([stock_event("stock.reserved", order.id, lines=LINES, allocations=twice)])
    ) == ["ack"]

    assert allocated(order) == [(1, "wh-east", 2, 0)]


def _order_rows_fetched() -> int:
    """Rows of the orders table read so far through its indexes or by scanning it whole
    (this connection's counters flushed first)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT coalesce(idx_tup_fetch, 0) + seq_tup_read FROM pg_stat_user_tables "
            "WHERE relname = %s",
            [Order._meta.db_table],
        )
        return int(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_an_answer_reads_its_own_order_however_many_others_wait(place: Any) -> None:
    """The move finds the answered orders by primary key, on its generic plan too: a backlog
    of PENDING orders (inventory down for a while) must not make every answer read all of
    them. The move used to take every PENDING order through the status index and keep the
    answered ones. As in ``service_runtime.query_plans``, sequential scans are discouraged, so
    that PostgreSQL plans as for a large table (on 300 rows, reading them all is cheaper)."""
    waiting = [place() for _ in range(300)]
    connection.close()  # a new connection: its plans are made from here on
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET enable_seqscan = off")
        for order in waiting[:3]:  # planned on the first, for no values in particular, and kept
            assert actions(process_batch([reserved(order.id)])) == ["ack"]
        before = _order_rows_fetched()
        assert actions(process_batch([reserved(waiting[3].id)])) == ["ack"]
        # The answered order, and the foreign-key checks of the rows written for it.
        assert _order_rows_fetched() - before <= 5
    finally:
        connection.close()  # the setting goes with it, even when the test fails
    assert status_of(waiting[3]) == OrderStatus.CONFIRMED
    assert Order.objects.filter(status=OrderStatus.PENDING).count() == 296
