"""Events written together: ``outbox.collecting`` on the real PostgreSQL, and the consumer's
batches that use it. One ``INSERT`` for any number of events, the same rows in the same order
as one ``INSERT`` each, and nothing of a transaction that rolls back."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from django.db import connection, transaction

from messaging.consumer import BatchHandler, Item, MessageProcessor, Rejections
from messaging.envelope import Envelope, decode
from messaging.models import InboxMessage, OutboxMessage
from messaging.outbox import collecting, publish_event
from tests.factories import envelope, order_created, stock_reserved

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def orders_service(settings: Any) -> None:
    settings.MESSAGING_SERVICE = "orders"
    settings.MESSAGING_PREFIX = "unit-prefix."


def _events(count: int) -> list[tuple[str, dict[str, Any]]]:
    """``count`` events of the three kinds an order goes through, in turn."""
    events: list[tuple[str, dict[str, Any]]] = []
    for n in range(count):
        order = order_created(user_id=n + 1)
        events.append(
            [
                ("order.created", order),
                ("order.confirmed", {"order_id": order["order_id"], "user_id": 2, "total": "9.5"}),
                ("order.cancelled", {"order_id": order["order_id"], "user_id": 3, "reason": "r"}),
            ][n % 3]
        )
    return events


def _publish(events: Sequence[tuple[str, dict[str, Any]]]) -> list[Envelope]:
    return [
        publish_event(kind, data, correlation_id=f"c-{n}") for n, (kind, data) in enumerate(events)
    ]


@contextlib.contextmanager
def statements() -> Iterator[list[str]]:
    """The statements run meanwhile, as their text without the parameters."""
    seen: list[str] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield seen


def _outbox_inserts(seen: list[str]) -> list[str]:
    return [sql for sql in seen if sql.startswith("INSERT") and "outbox" in sql]


def _rows() -> list[tuple[Any, ...]]:
    """Every outbox row in id order, as what a consumer and the relay read of it."""
    return [
        (
            str(row.message_id),
            row.exchange,
            row.routing_key,
            decode(row.body.encode()),
            row.correlation_id,
            row.attempts,
            row.last_error,
            row.sent_at,
            row.headers,
        )
        for row in OutboxMessage.objects.order_by("id")
    ]


@pytest.mark.parametrize("count", [2, 7, 40])
def test_n_events_cost_one_insert_and_give_the_rows_of_one_insert_each(count: int) -> None:
    events = _events(count)
    with statements() as alone, transaction.atomic():
        published_alone = _publish(events)
    rows_alone = _rows()
    OutboxMessage.objects.all().delete()

    with statements() as together, transaction.atomic(), collecting():
        published_together = _publish(events)
    rows_together = _rows()

    assert len(_outbox_inserts(alone)) == count
    assert len(_outbox_inserts(together)) == 1
    assert together == _outbox_inserts(together)  # and nothing else
    # Ids in publish order, and row for row what one INSERT each writes (but the event ids).
    assert [row[0] for row in rows_together] == [e.id for e in published_together]
    assert [row[0] for row in rows_alone] == [e.id for e in published_alone]
    assert [row[3] for row in rows_together] == published_together
    assert [row[1:3] + row[4:] for row in rows_together] == [
        row[1:3] + row[4:] for row in rows_alone
    ]
    assert [(r[3].type, r[3].data, r[3].correlation_id) for r in rows_together] == [
        (r[3].type, r[3].data, r[3].correlation_id) for r in rows_alone
    ]


def test_one_event_in_a_block_is_the_insert_of_one_event() -> None:
    with statements() as alone, transaction.atomic():
        _publish(_events(1))
    with statements() as together, transaction.atomic(), collecting():
        _publish(_events(1))
    assert _outbox_inserts(together) == _outbox_inserts(alone)
    assert OutboxMessage.objects.count() == 2


def test_a_savepoint_rolled_back_in_the_block_drops_only_its_events() -> None:
    with transaction.atomic(), collecting():
        publish_event("order.created", order_created(), correlation_id="kept-1")
        with pytest.raises(RuntimeError), transaction.atomic():
            publish_event("order.created", order_created(), correlation_id="dropped")
            with transaction.atomic():  # released, but inside the one rolled back
                publish_event("order.created", order_created(), correlation_id="dropped too")
            raise RuntimeError
        with transaction.atomic():  # released: kept
            publish_event("order.created", order_created(), correlation_id="kept-2")
        publish_event("order.created", order_created(), correlation_id="kept-3")
    kept = list(OutboxMessage.objects.order_by("id").values_list("correlation_id", flat=True))
    assert kept == ["kept-1", "kept-2", "kept-3"]


def test_an_error_in_the_block_rolls_back_its_whole_transaction_even_when_caught() -> None:
    with transaction.atomic():
        InboxMessage.objects.create(consumer="c", message_id=uuid.uuid4(), message_type="t")
        try:
            with collecting():
                publish_event("order.created", order_created(), correlation_id="c-1")
                raise RuntimeError("the handler failed")
        except RuntimeError:
            pass  # the state change above must not commit without its event
    assert (InboxMessage.objects.count(), OutboxMessage.objects.count()) == (0, 0)


def test_a_failing_insert_at_the_end_of_the_block_fails_the_transaction() -> None:
    with pytest.raises(Exception, match="duplicate key"), transaction.atomic(), collecting():
        event = publish_event("order.created", order_created(), correlation_id="c-1")
        InboxMessage.objects.create(consumer="c", message_id=uuid.uuid4(), message_type="t")
        OutboxMessage.objects.create(message_id=event.id, exchange="x", routing_key="y")
    assert (InboxMessage.objects.count(), OutboxMessage.objects.count()) == (0, 0)


def test_nested_blocks_write_once_with_the_outermost() -> None:
    with statements() as queries, transaction.atomic(), collecting():
        publish_event("order.created", order_created(), correlation_id="c-1")
        with collecting():
            publish_event("order.created", order_created(), correlation_id="c-2")
        assert OutboxMessage.objects.count() == 0
        publish_event("order.created", order_created(), correlation_id="c-3")
    assert len(_outbox_inserts(queries)) == 1
    order = list(OutboxMessage.objects.order_by("id").values_list("correlation_id", flat=True))
    assert order == ["c-1", "c-2", "c-3"]


def test_outside_a_transaction_the_block_is_one() -> None:
    with collecting():
        publish_event("order.created", order_created(), correlation_id="c-1")
    assert OutboxMessage.objects.count() == 1


# The consumer: a batch's events are written with one INSERT.


def _fans_out(events_per_message: int) -> tuple[BatchHandler, list[str]]:
    """A batch handler that publishes ``events_per_message`` stock.reserved per message."""
    published: list[str] = []

    def one(message: Envelope) -> None:
        for _ in range(events_per_message):
            published.append(
                publish_event(
                    "stock.reserved",
                    stock_reserved(message.data["order_id"]),
                    correlation_id=message.correlation_id,
                    causation=message,
                ).id
            )

    def many(messages: Sequence[Envelope]) -> Rejections:
        for message in messages:
            one(message)
        return {}

    return BatchHandler(one=one, many=many), published


def _process(handler: Callable[[Envelope], None], messages: list[Envelope], *, batch: bool):
    processor = MessageProcessor("inventory", {"order.created": handler}, max_attempts=3)
    items = [Item(m.to_json().encode()) for m in messages]
    with statements() as queries:
        if batch:
            outcomes = processor.process_batch(items)
        else:
            outcomes = [processor.process_batch([item])[0] for item in items]
    assert [o.action for o in outcomes] == ["ack"] * len(messages)
    return _outbox_inserts(queries)


@pytest.mark.parametrize("size", [2, 12])
def test_a_consumer_batch_writes_its_events_with_one_insert(settings: Any, size: int) -> None:
    settings.MESSAGING_SERVICE = "inventory"
    messages = [envelope() for _ in range(size)]
    handler, published = _fans_out(2)

    inserts = _process(handler, messages, batch=True)

    assert len(inserts) == 1
    rows = list(OutboxMessage.objects.order_by("id"))
    assert [str(row.message_id) for row in rows] == published
    causes = [decode(row.body.encode()).causation_id for row in rows]
    assert causes == [m.id for m in messages for _ in range(2)]  # delivery order, then publish


def test_a_message_alone_writes_its_events_with_one_insert(settings: Any) -> None:
    settings.MESSAGING_SERVICE = "inventory"
    handler, published = _fans_out(3)
    assert len(_process(handler, [envelope(), envelope()], batch=False)) == 2  # one per message
    rows = list(OutboxMessage.objects.order_by("id").values_list("message_id", flat=True))
    assert [str(message_id) for message_id in rows] == published


def test_a_batch_that_fails_writes_no_event_and_each_message_is_applied_alone(
    settings: Any,
) -> None:
    settings.MESSAGING_SERVICE = "inventory"
    messages = [envelope() for _ in range(3)]
    handler, published = _fans_out(1)

    def many(batch: Sequence[Envelope]) -> Rejections:
        handler.many(batch)
        raise RuntimeError("the batch failed after publishing")

    inserts = _process(BatchHandler(one=handler.one, many=many), messages, batch=True)

    assert len(inserts) == 3  # nothing of the batch, then one message per transaction
    assert len(published) == 6
    rows = list(OutboxMessage.objects.order_by("id").values_list("message_id", flat=True))
    assert [str(message_id) for message_id in rows] == published[3:]
    assert InboxMessage.objects.count() == 3
