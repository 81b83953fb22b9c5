"""The writer's broker connection and what the broker's answers mean, without a broker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from messaging import after_commit, sending
from messaging.config import MessagingConfig
from messaging.models import OutboxMessage
from messaging.publisher import Settled
from messaging.sending import settle


def _config(heartbeat: int = 30) -> MessagingConfig:
    return MessagingConfig(
        service="orders",
        broker_url="amqp://guest:guest@127.0.0.1:1/",
        prefix="unit.",
        handlers_path=None,
        prefetch=5,
        retry_delays_ms=(50,),
        heartbeat=heartbeat,
    )


@dataclass
class FakeConnection:
    confirm_timeout: float
    is_open: bool = True

    def close(self) -> None:
        self.is_open = False


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def link(monkeypatch: pytest.MonkeyPatch) -> Any:
    opened: list[FakeConnection] = []

    def open_connection(config: MessagingConfig, confirm_timeout: float) -> FakeConnection:
        opened.append(FakeConnection(confirm_timeout))
        return opened[-1]

    clock = Clock()
    monkeypatch.setattr(after_commit, "open_connection", open_connection)
    monkeypatch.setattr(after_commit.time, "monotonic", clock)
    link: Any = after_commit._Link()
    link.opened, link.clock = opened, clock  # what the tests look at
    return link


class TestAConnectionOfItsOwn:
    def test_opened_on_first_use_then_reused_with_a_short_confirm_timeout(self, link: Any) -> None:
        first = link.publisher(_config())
        assert link.publisher(_config()) is first
        assert len(link.opened) == 1
        assert first.confirm_timeout == after_commit.TIMEOUT_SECONDS

    def test_replaced_after_idling_longer_than_the_heartbeat(self, link: Any) -> None:
        first = link.publisher(_config(heartbeat=30))
        link.clock.now += 29
        assert link.publisher(_config(heartbeat=30)) is first
        link.clock.now += 31
        second = link.publisher(_config(heartbeat=30))
        assert second is not first and not first.is_open
        assert len(link.opened) == 2

    def test_never_the_one_inherited_across_a_fork(self, link: Any) -> None:
        link.publisher(_config())
        link.pid -= 1  # as in a child forked after the parent opened it
        link.publisher(_config())
        assert len(link.opened) == 2
        assert link.opened[0].is_open  # the parent's socket: not closed from the child

    def test_confirms_in_flight_are_never_read_from_a_parent_s_socket(
        self, link: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        read: list[Any] = []
        connection = link.publisher(_config())
        connection.wait = lambda: read.append("wait")
        link.in_flight = [OutboxMessage(message_id="m1")]
        link.pid -= 1  # as in a child forked while its parent's events were in flight
        monkeypatch.setattr(after_commit, "_link", link)
        after_commit.settle_in_flight()
        assert read == [] and link.in_flight is None  # left to the relay
        assert connection.is_open  # the parent's socket: not closed from the child

    def test_after_a_failure_no_attempt_until_the_back_off_passed(self, link: Any) -> None:
        link.publisher(_config())
        link.failed(back_off=True)
        assert not link.opened[0].is_open
        link.clock.now += after_commit.BACKOFF_SECONDS - 0.1
        assert link.publisher(_config()) is None
        link.clock.now += 0.2
        assert link.publisher(_config()) is not None
        assert len(link.opened) == 2

    def test_a_stale_connection_is_not_ready_for_reuse_once_dropped(self, link: Any) -> None:
        assert not link.ready()
        link.publisher(_config())
        assert link.ready()
        link.failed(back_off=False)
        assert not link.ready()
        assert link.publisher(_config()) is not None  # reopened at once, no back-off

    def test_one_found_closed_is_replaced_before_use(self, link: Any) -> None:
        first = link.publisher(_config())
        first.is_open = False  # the broker closed it while it idled
        assert link.publisher(_config()) is not first
        assert len(link.opened) == 2


class TestAConsumersConnection:
    def test_it_may_wait_longer_for_its_confirms(self, link: Any) -> None:
        link.confirm_timeout = 30.0  # what after_commit.wait_for_confirms(30) sets
        assert link.publisher(_config()).confirm_timeout == 30.0

    def test_closed_when_the_consumer_stops_and_opened_again_on_the_next_event(
        self, link: Any
    ) -> None:
        first = link.publisher(_config())
        link.reset()
        assert not first.is_open and not link.ready()
        assert link.publisher(_config()) is not first


def _row(message_id: str) -> OutboxMessage:
    return OutboxMessage(message_id=message_id, routing_key="order.created")


class TestSettle:
    def test_one_entry_per_row_however_often_it_went_out(self) -> None:
        a, b, c = (_row(f"00000000-0000-0000-0000-00000000000{i}") for i in (1, 2, 3))
        sent = [a, a, b, c, c]
        outcome = settle(sent, Settled(confirmed=[0, 1, 3], refused={2: "no route", 4: "nack"}))
        assert outcome.confirmed == [a, c]  # a copy refused beside a copy taken is sent
        assert outcome.refused == [(b, "no route")]

    def test_nothing_settled_is_nothing_to_record(self) -> None:
        outcome = settle([_row("00000000-0000-0000-0000-000000000001")], Settled())
        assert (outcome.confirmed, outcome.refused) == ([], [])


def test_the_broker_user_is_read_from_its_url_once(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "amqp://orders-writer:secret@broker.example:5672/%2F?heartbeat=30"
    parsed: list[str] = []
    real = sending.pika.URLParameters

    def counting(value: str) -> Any:
        parsed.append(value)
        return real(value)

    monkeypatch.setattr(sending.pika, "URLParameters", counting)
    sending.broker_user.cache_clear()
    try:
        users = [sending.broker_user(url) for _ in range(3)]
        other = sending.broker_user("amqp://inventory-writer:s@broker.example:5672/%2F")
    finally:
        sending.broker_user.cache_clear()
    assert users == ["orders-writer"] * 3
    assert other == "inventory-writer"
    assert parsed == [url, "amqp://inventory-writer:s@broker.example:5672/%2F"]
