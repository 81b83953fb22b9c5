"""A web worker's events go out on a sender thread of its own (real PostgreSQL and RabbitMQ): the
writer does not wait for the broker, transactions committed while the thread is busy go out
together with one mark, a full queue or a stopped thread sends the writer back to publishing
its own, and nothing waiting is dropped by a stop."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging import after_commit
from messaging.config import MessagingConfig
from messaging.models import OutboxMessage
from tests.integration.conftest import Broker, wait_for, write_orders

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def orders_writer(settings: Any, broker: Broker) -> Iterator[None]:
    settings.MESSAGING_SERVICE = "orders"
    settings.MESSAGING_PREFIX = broker.prefix
    settings.MESSAGING_PUBLISH_AFTER_COMMIT = True
    broker.declare()
    after_commit.use_connection(None)
    after_commit.publish_in_background()
    yield
    after_commit.stop_background(5.0)
    after_commit.use_connection(None)


class Held:
    """The sender thread's publishing, held at its first call until released; what each call
    was given, in rows."""

    def __init__(self, publish: Callable[[Sequence[OutboxMessage], MessagingConfig], None]):
        self._publish = publish
        self.calls: list[int] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, rows: Sequence[OutboxMessage], config: MessagingConfig) -> None:
        self.calls.append(len(rows))
        if threading.current_thread().name == "event-sender" and not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(10)
        self._publish(rows, config)


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Held:
    hold = Held(after_commit._publish)
    monkeypatch.setattr(after_commit, "_publish", hold)
    return hold


def _unsent() -> int:
    return OutboxMessage.objects.filter(sent_at__isnull=True).count()


def _updates(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith("UPDATE")]


def test_the_writer_hands_its_rows_over_and_the_sender_publishes_and_marks_them(
    broker: Broker,
) -> None:
    with CaptureQueriesContext(connection) as queries:
        ids = write_orders(3)
    assert _updates(queries) == []  # the writer neither waited for confirms nor marked
    received = broker.wait_for_messages(broker.names.queue("inventory"), 3)
    assert [d.properties.message_id for d in received] == ids
    wait_for(lambda: _unsent() == 0, timeout=10)


def test_transactions_committed_while_the_sender_is_busy_go_out_with_one_mark(
    broker: Broker, held: Held
) -> None:
    first = write_orders(1)
    assert held.entered.wait(10)  # the sender holds the first transaction's row
    later = [write_orders(1)[0] for _ in range(3)]  # three more transactions meanwhile
    held.release.set()
    received = broker.wait_for_messages(broker.names.queue("inventory"), 4)
    assert [d.properties.message_id for d in received] == first + later  # in commit order
    wait_for(lambda: _unsent() == 0, timeout=10)
    assert held.calls == [1, 3]  # the three waiting ones: one confirm wait, one mark


def test_a_full_queue_sends_the_writer_back_to_publishing_its_own(
    broker: Broker, held: Held, monkeypatch: pytest.MonkeyPatch
) -> None:
    after_commit.stop_background(5.0)
    monkeypatch.setattr(after_commit, "WAITING_LIMIT", 1)
    after_commit.publish_in_background()
    write_orders(1)
    assert held.entered.wait(10)
    write_orders(1)  # waits in the queue, which is now full
    with CaptureQueriesContext(connection) as queries:
        own = write_orders(1)
    assert len(_updates(queries)) == 1  # published and marked by the writer itself
    assert OutboxMessage.objects.get(message_id=own[0]).sent_at is not None
    held.release.set()
    broker.wait_for_messages(broker.names.queue("inventory"), 3)
    wait_for(lambda: _unsent() == 0, timeout=10)


def test_a_stop_sends_what_waits_first_then_writers_publish_their_own(
    broker: Broker, held: Held
) -> None:
    write_orders(1)
    assert held.entered.wait(10)
    write_orders(2)  # one transaction waiting behind the held one
    stopper = threading.Thread(target=after_commit.stop_background, args=(10.0,))
    stopper.start()
    held.release.set()
    stopper.join(15)
    assert not stopper.is_alive()
    assert _unsent() == 0  # both transactions' rows went out before the thread ended
    with CaptureQueriesContext(connection) as queries:
        write_orders(1)
    assert len(_updates(queries)) == 1  # no sender any more: the writer marks its own
    assert _unsent() == 0
    assert len(broker.wait_for_messages(broker.names.queue("inventory"), 4)) == 4


def test_the_sender_outlives_a_failure_and_leaves_the_rows_to_the_relay(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed = threading.Event()

    def refuse(rows: Sequence[OutboxMessage], config: MessagingConfig) -> None:
        failed.set()
        raise RuntimeError("refused")

    monkeypatch.setattr(after_commit, "_publish", refuse)
    write_orders(1)
    assert failed.wait(10)
    monkeypatch.undo()
    later = write_orders(1)  # the same thread goes on
    received = broker.wait_for_messages(broker.names.queue("inventory"), 1)
    assert [d.properties.message_id for d in received] == later
    wait_for(lambda: _unsent() == 1, timeout=10)  # the failed one waits for the relay
