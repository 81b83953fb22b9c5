"""Publishing a batch with its publisher confirms in flight, then waiting for them once.

pika's ``BlockingChannel`` in confirm mode waits for each message's confirm before it sends the
next one: a round trip to the broker (and a broker fsync for persistent messages) per message.
:class:`ConfirmingPublisher` sends the whole batch on the asynchronous channel underneath the
blocking one, then runs the connection's I/O loop until the broker has settled every delivery
tag (``basic.ack``/``basic.nack``, possibly ``multiple``). Every message is published with
``mandatory``: one that no queue takes comes back as ``basic.return`` (before its ack) and
counts as refused, never as confirmed.

Use one publisher per channel, from the thread that owns its connection.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pika
from pika import spec
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import AMQPError, ChannelClosed

CONFIRM_TIMEOUT_SECONDS = 30.0


class ConfirmTimeout(AMQPError):
    """The broker did not settle a batch in time: treat the connection as broken."""


@dataclass(frozen=True)
class OutgoingMessage:
    exchange: str
    routing_key: str
    body: bytes
    properties: pika.BasicProperties  # must carry a message_id


class Publisher(Protocol):
    """What sending needs of a publisher: :class:`ConfirmingPublisher` (a relay's channel) or
    :class:`~messaging.publish_connection.PublishConnection` (a writer's connection)."""

    def publish(self, message: OutgoingMessage) -> None: ...

    def wait(self) -> Settled: ...


@dataclass
class Settled:
    """What the broker did with a batch: indexes of the confirmed and the refused messages."""

    confirmed: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)  # index -> why


class Outstanding:
    """The bookkeeping of a batch in flight on one channel in confirm mode: which delivery tag is
    which message, which came back, and what the broker settled."""

    def __init__(self) -> None:
        self._last_tag = 0
        self._forget()

    @property
    def waiting(self) -> bool:
        return bool(self._tags)

    def sending(self, message: OutgoingMessage) -> None:
        """Count ``message`` as published next on the channel (the broker numbers them)."""
        message_id = message.properties.message_id
        if not message_id:
            raise ValueError("a message needs a message_id: returns are matched by it")
        index = self._count
        self._count += 1
        self._by_message_id.setdefault(message_id, []).append(index)
        self._last_tag += 1
        self._tags[self._last_tag] = index

    def returned(self, method: spec.Basic.Return, properties: pika.BasicProperties) -> None:
        # Returns come in publishing order: of several copies of one id, the first not yet
        # returned is the one.
        for index in self._by_message_id.get(properties.message_id or "", []):
            if index not in self._returned:
                self._returned[index] = (
                    f"UnroutableError: {method.reply_code} {method.reply_text} "
                    f"({method.exchange} {method.routing_key})"
                )
                break

    def settled(self, method: spec.Basic.Ack | spec.Basic.Nack) -> None:
        acked = isinstance(method, spec.Basic.Ack)
        if method.multiple:
            tags = [tag for tag in self._tags if tag <= method.delivery_tag]
        else:
            tags = [method.delivery_tag] if method.delivery_tag in self._tags else []
        for tag in tags:
            index = self._tags.pop(tag)
            if index in self._returned:
                self._settled.refused[index] = self._returned[index]
            elif acked:
                self._settled.confirmed.append(index)
            else:
                self._settled.refused[index] = "NackError: the broker refused the message"

    def take(self) -> Settled:
        """What the broker settled of the batch; the next batch starts from nothing."""
        settled = self._settled
        settled.confirmed.sort()
        self._forget()
        return settled

    def _forget(self) -> None:
        self._count = 0
        self._tags: dict[int, int] = {}  # outstanding delivery tag -> index in the batch
        self._by_message_id: dict[str, list[int]] = {}  # copies of one id share an entry
        self._settled = Settled()
        self._returned: dict[int, str] = {}


class ConfirmingPublisher:
    def __init__(
        self,
        connection: BlockingConnection,
        channel: BlockingChannel,
        *,
        confirm_timeout: float = CONFIRM_TIMEOUT_SECONDS,
    ) -> None:
        self._connection = connection
        # The asynchronous channel under the blocking one: it lets publishes go out without
        # waiting, and reports confirms and returns through callbacks run by the I/O loop.
        self._channel: Any = channel._impl
        self._confirm_timeout = confirm_timeout
        self._outstanding = Outstanding()
        selected: list[bool] = []
        self._channel.add_on_return_callback(self._on_return)

        def on_select_ok(_: Any) -> None:
            selected.append(True)
            self._wake()

        self._channel.confirm_delivery(self._on_confirm, callback=on_select_ok)
        self._run_until(lambda: bool(selected), "Confirm.SelectOk")

    def publish(self, message: OutgoingMessage) -> None:
        """Send one message now; its confirm is collected by :meth:`wait`."""
        self._outstanding.sending(message)
        self._channel.basic_publish(
            exchange=message.exchange,
            routing_key=message.routing_key,
            body=message.body,
            properties=message.properties,
            mandatory=True,
        )

    def wait(self) -> Settled:
        """Block until the broker settled every message published since the last wait."""
        try:
            self._run_until(lambda: not self._outstanding.waiting, "publisher confirms")
        finally:
            settled = self._outstanding.take()
        return settled

    def publish_all(self, messages: Sequence[OutgoingMessage]) -> Settled:
        for message in messages:
            self.publish(message)
        return self.wait()

    def close(self) -> None:
        """Close the channel without waiting for the broker; unsettled messages are forgotten."""
        with contextlib.suppress(AMQPError):
            if self._channel.is_open:
                self._channel.close()

    def _run_until(self, done: Any, what: str) -> None:
        deadline = time.monotonic() + self._confirm_timeout
        while not done():
            if self._channel.is_closed:
                raise ChannelClosed(-1, f"the channel closed while waiting for {what}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConfirmTimeout(f"no {what} within {self._confirm_timeout:g}s")
            self._connection.process_data_events(time_limit=min(remaining, 1.0))

    def _wake(self) -> None:
        # Callbacks of the asynchronous channel do not end ``process_data_events``; a callback
        # queued on the blocking connection does, so the wait returns as soon as it is done.
        self._connection.add_callback_threadsafe(_nothing)

    def _on_return(
        self, _channel: Any, method: spec.Basic.Return, properties: pika.BasicProperties, _: bytes
    ) -> None:
        self._outstanding.returned(method, properties)

    def _on_confirm(self, frame: Any) -> None:
        was_waiting = self._outstanding.waiting
        self._outstanding.settled(frame.method)
        if was_waiting and not self._outstanding.waiting:
            self._wake()


def _nothing() -> None:
    """Queued only to end a wait."""
