"""Set-based handlers: runs of a batch in one call, and each message still its own outcome."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging.consumer import (
    ACK,
    BatchHandler,
    Item,
    MessageProcessor,
    Rejections,
    RejectMessage,
    handling,
)
from messaging.envelope import Envelope
from messaging.models import InboxMessage, OutboxMessage
from service_runtime.logging import bound
from tests.factories import envelope, order_shipped, reserve

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def inventory_service(settings: Any) -> None:
    settings.MESSAGING_SERVICE = "inventory"


class SetBased:
    """A batch handler whose effect is an outbox row per message, written as it is told.

    ``reject`` names messages it rejects (applying nothing of them), ``fail`` messages it
    cannot apply (it raises, in ``many`` and in ``one``).
    """

    def __init__(self, reject: Sequence[str] = (), fail: Sequence[str] = ()) -> None:
        self.reject, self.fail = set(reject), set(fail)
        self.calls: list[tuple[str, list[str]]] = []  # ("one" or "many", message ids)
        self.bound: list[str | None] = []  # the message id bound while announcing each

    def many(self, envelopes: Sequence[Envelope]) -> Rejections:
        self.calls.append(("many", [e.id for e in envelopes]))
        if self.fail & {e.id for e in envelopes}:
            raise ValueError("cannot apply this batch")
        rejected: dict[str, RejectMessage] = {}
        for e in envelopes:
            if e.id in self.reject:
                rejected[e.id] = RejectMessage(f"no such order {e.data['order_id']}")
                continue
            with handling(e):
                self.bound.append(bound().get("message_id"))
                reserve(e)
        return rejected

    def one(self, envelope: Envelope) -> None:
        self.calls.append(("one", [envelope.id]))
        if envelope.id in self.fail:
            raise ValueError("boom")
        if envelope.id in self.reject:
            raise RejectMessage(f"no such order {envelope.data['order_id']}")
        reserve(envelope)

    def handler(self) -> BatchHandler:
        return BatchHandler(one=self.one, many=self.many)


def _raw(*messages: Envelope) -> list[Item]:
    return [Item(m.to_json().encode()) for m in messages]


def _shipped() -> Envelope:
    return envelope("order.shipped", order_shipped(str(uuid.uuid4()), 7))


def _inbox() -> set[str]:
    return {str(i) for i in InboxMessage.objects.values_list("message_id", flat=True)}


def _effects() -> int:
    return OutboxMessage.objects.count()


class TestRuns:
    def test_consecutive_messages_of_a_batch_handler_go_to_it_in_one_call(self) -> None:
        set_based = SetBased()
        messages = [envelope() for _ in range(5)]
        processor = MessageProcessor("inventory", {"order.created": set_based.handler()}, 3)

        assert processor.process_batch(_raw(*messages)) == [ACK] * 5

        assert set_based.calls == [("many", [m.id for m in messages])]
        assert _effects() == 5 and _inbox() == {m.id for m in messages}

    def test_another_handler_in_between_keeps_the_order_of_arrival(self) -> None:
        set_based, plain = SetBased(), list[Envelope]()
        handlers: dict[str, Callable[[Envelope], None]] = {
            "order.created": set_based.handler(),
            "order.shipped": plain.append,
        }
        first, second, shipped, third = envelope(), envelope(), _shipped(), envelope()
        processor = MessageProcessor("inventory", handlers, 3)

        assert processor.process_batch(_raw(first, second, shipped, third)) == [ACK] * 4

        assert set_based.calls == [("many", [first.id, second.id]), ("one", [third.id])]
        assert plain == [shipped]

    def test_types_sharing_a_many_are_given_together_in_their_order(self) -> None:
        set_based = SetBased()
        handlers = {
            "order.created": BatchHandler(one=set_based.one, many=set_based.many),
            "order.shipped": BatchHandler(one=set_based.one, many=set_based.many),
        }
        messages = [envelope(), _shipped(), envelope()]
        processor = MessageProcessor("inventory", handlers, 3)

        assert processor.process_batch(_raw(*messages)) == [ACK] * 3

        assert set_based.calls == [("many", [m.id for m in messages])]

    def test_a_message_alone_goes_to_one(self) -> None:
        set_based = SetBased()
        message = envelope()
        processor = MessageProcessor("inventory", {"order.created": set_based.handler()}, 3)

        assert processor.process(message.to_json().encode()) == ACK

        assert set_based.calls == [("one", [message.id])]

    def test_each_message_is_announced_in_its_own_delivery_context(self) -> None:
        set_based = SetBased()
        messages = [envelope() for _ in range(3)]
        processor = MessageProcessor("inventory", {"order.created": set_based.handler()}, 3)

        processor.process_batch(_raw(*messages))

        assert set_based.bound == [m.id for m in messages]


class TestDuplicates:
    def test_a_duplicate_in_the_batch_or_in_the_inbox_is_applied_once(self) -> None:
        set_based = SetBased()
        processor = MessageProcessor("inventory", {"order.created": set_based.handler()}, 3)
        seen = envelope()
        assert processor.process(seen.to_json().encode()) == ACK
        twice, other = envelope(), envelope()

        outcomes = processor.process_batch(_raw(twice, seen, other, twice))

        assert outcomes == [ACK] * 4
        assert set_based.calls[-1] == ("many", [twice.id, other.id])
        assert _effects() == 3


class TestOwnOutcomes:
    def test_a_rejected_message_is_dead_with_nothing_applied_and_the_rest_applied(self) -> None:
        bad = envelope()
        set_based = SetBased(reject=[bad.id])
        good = [envelope(), envelope()]
        processor = MessageProcessor("inventory", {"order.created": set_based.handler()}, 3)

        outcomes = processor.process_batch(_raw(good[0], bad, good[1]))

        assert [o.action for o in outcomes] == ["ack", "dead", "ack"]
        assert outcomes[1].reason == f"rejected: no such order {bad.data['order_id']}"
        assert set_based.calls == [("many", [good[0].id, bad.id, good[1].id])]  # no fall-back
        assert _effects() == 2
        assert _inbox() == {m.id for m in good}  # replayed from the dead letters, it applies

    def test_a_failing_message_is_retried_alone_while_the_others_are_applied(self) -> None:
        bad = envelope()
        set_based = SetBased(fail=[bad.id])
        good = [envelope() for _ in range(3)]
        processor = MessageProcessor("inventory", {"order.created": set_based.handler()}, 3)

        outcomes = processor.process_batch(_raw(good[0], bad, good[1], good[2]))

        assert [o.action for o in outcomes] == ["ack", "retry", "ack", "ack"]
        assert outcomes[1].reason.startswith("ValueError: boom")
        # the batch fell back: each message in a transaction of its own, by ``one``
        assert set_based.calls == [
            ("many", [good[0].id, bad.id, good[1].id, good[2].id]),
            *(("one", [m.id]) for m in (good[0], bad, good[1], good[2])),
        ]
        assert _effects() == 3 and _inbox() == {m.id for m in good}


def test_a_batch_costs_the_same_statements_whatever_its_size() -> None:
    def many(envelopes: Sequence[Envelope]) -> Rejections:
        with connection.cursor() as cursor:  # one set-based statement for them all
            cursor.execute("SELECT count(*) FROM unnest(%s::uuid[])", [[e.id for e in envelopes]])
        return {}

    processor = MessageProcessor(
        "inventory", {"order.created": BatchHandler(one=lambda e: None, many=many)}, 3
    )

    def statements(size: int) -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            outcomes = processor.process_batch(_raw(*(envelope() for _ in range(size))))
        assert outcomes == [ACK] * size
        return [q["sql"].split(" ")[0] for q in queries]

    # BEGIN, the inbox rows, the handler's one statement, COMMIT
    assert statements(20) == statements(2) == ["BEGIN", "INSERT", "SELECT", "COMMIT"]
