"""The publish connection against a scripted broker: the endings a real one will not stage on
demand (a confirm that never comes, a stream cut mid-wait)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest
from pika import frame, spec
from pika.exceptions import StreamLostError

from messaging.publish_connection import PublishConnection
from messaging.publisher import ConfirmTimeout, OutgoingMessage


def methods(peer: socket.socket) -> Iterator[tuple[int, Any]]:
    """The method frames a client sends on ``peer``, as (channel, method), as they come."""
    buffer = b""
    while True:
        buffer += peer.recv(4096)
        while True:
            consumed, received = frame.decode_frame(buffer)
            if received is None:
                break
            buffer = buffer[consumed:]
            if isinstance(received, frame.Method):
                yield received.channel_number, received.method


class ScriptedBroker:
    """Accepts one connection, answers the handshake, then runs ``after_handshake``."""

    def __init__(self, after_handshake: Callable[[socket.socket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.after_handshake = after_handshake
        self.received: list[object] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        peer, _ = self.listener.accept()
        with peer:
            assert peer.recv(8).startswith(b"AMQP")
            answers = {
                spec.Connection.StartOk: spec.Connection.Tune(0, 131072, 60),
                spec.Connection.Open: spec.Connection.OpenOk(),
                spec.Channel.Open: spec.Channel.OpenOk(),
                spec.Confirm.Select: spec.Confirm.SelectOk(),
            }
            peer.sendall(
                frame.Method(
                    0, spec.Connection.Start(mechanisms="PLAIN", locales="en_US")
                ).marshal()
            )
            for channel, method in methods(peer):
                self.received.append(method)
                answer = answers.get(type(method))
                if answer is not None:
                    peer.sendall(frame.Method(channel, answer).marshal())
                if isinstance(method, spec.Confirm.Select):
                    break
            self.after_handshake(peer)

    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


@pytest.fixture
def scripted() -> Iterator[Callable[[Callable[[socket.socket], None]], ScriptedBroker]]:
    brokers: list[ScriptedBroker] = []

    def start(after_handshake: Callable[[socket.socket], None]) -> ScriptedBroker:
        brokers.append(ScriptedBroker(after_handshake))
        return brokers[-1]

    yield start
    for broker in brokers:
        broker.close()


def _message() -> OutgoingMessage:
    return OutgoingMessage("", "q", b"{}", pika.BasicProperties(message_id="m1", delivery_mode=2))


def test_it_asks_for_no_heartbeats_and_one_channel(scripted: Callable) -> None:
    broker = scripted(lambda peer: time.sleep(0.2))
    connection = PublishConnection(broker.url(), name="w", timeout=2.0)
    [tune_ok] = [m for m in broker.received if isinstance(m, spec.Connection.TuneOk)]
    assert (tune_ok.heartbeat, tune_ok.channel_max, tune_ok.frame_max) == (0, 1, 131072)
    [start_ok] = [m for m in broker.received if isinstance(m, spec.Connection.StartOk)]
    assert start_ok.client_properties["connection_name"] == "w"
    assert connection.is_open


def test_a_confirm_that_never_comes_times_out_and_ends_the_connection(scripted: Callable) -> None:
    silent = threading.Event()
    broker = scripted(lambda peer: silent.wait(5))
    connection = PublishConnection(broker.url(), name="w", timeout=2.0, confirm_timeout=0.3)
    connection.publish(_message())
    started = time.monotonic()
    with pytest.raises(ConfirmTimeout, match=r"publisher confirms within 0\.3s"):
        connection.wait()
    assert 0.25 < time.monotonic() - started < 2.0
    assert not connection.is_open
    silent.set()


def test_a_stream_cut_while_it_waits_is_a_lost_stream(scripted: Callable) -> None:
    def cut(peer: socket.socket) -> None:
        peer.recv(4096)  # the message, then the end of the stream

    broker = scripted(cut)
    connection = PublishConnection(broker.url(), name="w", timeout=2.0)
    connection.publish(_message())
    with pytest.raises(StreamLostError, match="ended the stream"):
        connection.wait()
    assert not connection.is_open


def test_a_multiple_ack_settles_every_tag_up_to_it(scripted: Callable) -> None:
    def ack_all(peer: socket.socket) -> None:
        published = 0
        for _, method in methods(peer):
            published += isinstance(method, spec.Basic.Publish)
            if published == 3:
                break
        peer.sendall(frame.Method(1, spec.Basic.Nack(delivery_tag=1)).marshal())
        peer.sendall(frame.Method(1, spec.Basic.Ack(delivery_tag=3, multiple=True)).marshal())

    broker = scripted(ack_all)
    connection = PublishConnection(broker.url(), name="w", timeout=2.0)
    messages = [
        OutgoingMessage("", "q", b"{}", pika.BasicProperties(message_id=f"m{n}")) for n in range(3)
    ]
    settled = connection.publish_all(messages)
    assert settled.confirmed == [1, 2]
    assert settled.refused == {0: "NackError: the broker refused the message"}


def test_a_broker_that_never_answers_the_handshake_times_out_with_the_connect_timeout() -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel does), never speaks
    try:
        url = f"amqp://guest:guest@127.0.0.1:{listener.getsockname()[1]}/%2F"
        started = time.monotonic()
        with pytest.raises(ConfirmTimeout, match=r"no Connection\.Start within 0\.3s"):
            PublishConnection(url, name="w", timeout=0.3)
        assert time.monotonic() - started < 2.0
    finally:
        listener.close()


def _acking_after(count: int, arrivals: list[float]) -> Callable[[socket.socket], None]:
    """A broker that notes when each of ``count`` messages arrives, then acks them all."""

    def serve(peer: socket.socket) -> None:
        for _, method in methods(peer):
            if isinstance(method, spec.Basic.Publish):
                arrivals.append(time.monotonic())
                if len(arrivals) == count:
                    break
        ack = spec.Basic.Ack(delivery_tag=count, multiple=True)
        peer.sendall(frame.Method(1, ack).marshal())

    return serve


def _publishing(broker: ScriptedBroker, count: int) -> PublishConnection:
    """A connection to ``broker`` on which ``count`` messages were published, not awaited."""
    connection = PublishConnection(broker.url(), name="w", timeout=2.0)
    for n in range(count):
        connection.publish(
            OutgoingMessage("", "q", b"{}", pika.BasicProperties(message_id=f"m{n}"))
        )
    return connection


def test_a_batch_goes_out_in_one_write_when_it_is_awaited(scripted: Callable) -> None:
    arrivals: list[float] = []
    broker = scripted(_acking_after(3, arrivals))
    connection = _publishing(broker, 3)
    time.sleep(0.2)  # time enough for anything written to arrive
    awaited_at = time.monotonic()
    assert connection.wait().confirmed == [0, 1, 2]
    assert len(arrivals) == 3
    assert min(arrivals) >= awaited_at


def test_a_batch_larger_than_the_buffer_starts_going_out_before_the_wait(
    scripted: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("messaging.publish_connection.SEND_BUFFER_BYTES", 1)
    arrivals: list[float] = []
    broker = scripted(_acking_after(2, arrivals))
    connection = _publishing(broker, 2)
    time.sleep(0.2)
    awaited_at = time.monotonic()
    assert connection.wait().confirmed == [0, 1]
    assert max(arrivals) < awaited_at
