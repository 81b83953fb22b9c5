"""A publish-only AMQP connection: one channel in confirm mode, on a socket of its own.

A writer publishes its transaction's few events right after the commit and waits for their
confirms (or, a consumer, reads them while its next batch runs: :meth:`send`, then
:meth:`settled_now` or :meth:`wait`). Through pika's ``BlockingConnection`` that wait runs
pika's I/O loop in Python: per message a timer armed and cancelled, two rounds of ``epoll``,
four socket writes (the method, header and body frames, and the loop's wake-up) and three
reads, about 200 us of CPU on this kind of machine. :class:`PublishConnection` writes a
batch's frames in one ``send`` and reads the broker's answers straight off its socket, encoded
and decoded by pika's own frame codec; nothing else is ever sent on it, so nothing else has to
be dispatched.

The guarantees are :class:`~messaging.publisher.ConfirmingPublisher`'s, with the same
interface: every message persistent-as-given and ``mandatory``, the batch's confirms awaited
once; a message that comes back (``basic.return``, before its ack) or is nacked is refused,
never confirmed. A ``channel.close`` or ``connection.close`` from the broker, the end of the
stream or a confirm that does not come within ``confirm_timeout`` raises, and the connection is
done with: its owner opens another.

No heartbeats: the connection asks for none (nothing would answer them while it idles). What
the broker sent while it idled (a ``connection.close`` when it shuts down, the end of the
stream) is read before the next batch goes out, so the owner learns of it at once; a peer that
vanished without a word shows as a confirm timeout, and the owner replaces a connection that
idled longer than the heartbeat interval anyway.

One connection per thread, like any other.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import time
from typing import Any

import pika
from pika import amqp_object, frame, spec
from pika.exceptions import (
    AuthenticationError,
    ChannelClosedByBroker,
    ConnectionClosedByBroker,
    StreamLostError,
)

from messaging.publisher import (
    CONFIRM_TIMEOUT_SECONDS,
    ConfirmTimeout,
    OutgoingMessage,
    Outstanding,
    Settled,
)

CHANNEL = 1
FRAME_MAX = 131072  # pika's default, and RabbitMQ's
# Queued frames are written at the latest when they reach this size (or at the batch's wait).
SEND_BUFFER_BYTES = 262144
# A frame's type, channel and size before its payload, and its end marker after.
FRAME_OVERHEAD = spec.FRAME_HEADER_SIZE + spec.FRAME_END_SIZE


class PublishConnection:
    """Opens the connection, its channel and confirm mode; ``timeout`` bounds the whole
    handshake (and each write)."""

    def __init__(
        self,
        url: str,
        *,
        name: str,
        timeout: float,
        confirm_timeout: float = CONFIRM_TIMEOUT_SECONDS,
    ) -> None:
        params = pika.URLParameters(url)
        self._confirm_timeout = confirm_timeout
        self._timeout = timeout
        self._incoming = b""
        self._open = False
        self._outstanding = Outstanding()
        self._returning: spec.Basic.Return | None = None  # its header (and body) follow
        self._unsent = bytearray()  # frames of messages published, sent by wait()

        self._sock = socket.create_connection((params.host, params.port), timeout=timeout)
        try:
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if params.ssl_options is not None:
                server_name = params.ssl_options.server_hostname or params.host
                self._sock = params.ssl_options.context.wrap_socket(
                    self._sock, server_hostname=server_name
                )
            self._handshake(params, name, timeout)
        except BaseException:
            self._sock.close()
            raise
        self._open = True

    @property
    def is_open(self) -> bool:
        return self._open

    def publish(self, message: OutgoingMessage) -> None:
        """Queue one message: :meth:`wait` sends what is queued (one write for the whole
        batch) and collects the confirms."""
        if not self._outstanding.waiting:
            self._read_what_waits()  # a close sent while the connection idled
        self._outstanding.sending(message)
        body = message.body
        self._unsent += frame.Method(
            CHANNEL,
            spec.Basic.Publish(
                exchange=message.exchange, routing_key=message.routing_key, mandatory=True
            ),
        ).marshal()
        self._unsent += frame.Header(CHANNEL, len(body), message.properties).marshal()
        for start in range(0, len(body), self._body_max):
            self._unsent += frame.Body(CHANNEL, body[start : start + self._body_max]).marshal()
        if len(self._unsent) >= SEND_BUFFER_BYTES:
            self._send_unsent()

    def send(self) -> None:
        """Write what is queued now; its confirms are read later, by :meth:`wait` or
        :meth:`settled_now` (nothing more is published before they are)."""
        self._send_unsent()

    def wait(self) -> Settled:
        """Send what is queued, then block until the broker settled every message published
        since the last wait."""
        try:
            self._send_unsent()
            deadline = time.monotonic() + self._confirm_timeout
            while self._outstanding.waiting:
                self._receive(deadline, self._confirms)
        finally:
            settled = self._outstanding.take()
        return settled

    def settled_now(self) -> Settled | None:
        """Without blocking: what :meth:`wait` would return, if the broker has already settled
        every message published since the last wait; None while some are still out."""
        self._send_unsent()
        while self._outstanding.waiting and self._readable():
            self._receive(time.monotonic() + self._confirm_timeout, self._confirms)
        if self._outstanding.waiting:
            return None
        return self._outstanding.take()

    def publish_all(self, messages: list[OutgoingMessage]) -> Settled:
        for message in messages:
            self.publish(message)
        return self.wait()

    def close(self) -> None:
        """Close politely (the broker logs an abrupt end as an error), waiting briefly for its
        answer; unsettled messages are forgotten."""
        if not self._open:
            return
        self._open = False
        self._unsent.clear()
        with contextlib.suppress(Exception):
            self._send_method(
                0, spec.Connection.Close(reply_code=200, reply_text="Normal shutdown")
            )
            seconds = min(self._timeout, 1.0)
            deadline = time.monotonic() + seconds
            while True:
                method = self._next_method(deadline, f"Connection.CloseOk within {seconds:g}s")
                if isinstance(method, spec.Connection.CloseOk):
                    break
        with contextlib.suppress(OSError):
            self._sock.close()

    # -- the handshake ----------------------------------------------------------------------

    def _handshake(self, params: pika.URLParameters, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout

        def expect(kind: type[amqp_object.Method]) -> Any:
            method = self._next_method(deadline, f"{kind.NAME} within {timeout:g}s")
            if not isinstance(method, kind):
                raise StreamLostError(f"expected {kind.NAME}, the broker sent {method.NAME}")
            return method

        self._send(frame.ProtocolHeader().marshal())
        start = expect(spec.Connection.Start)
        mechanism, response = params.credentials.response_for(start)
        if mechanism is None:
            raise AuthenticationError(f"the broker offers none of {params.credentials}")
        self._send_method(
            0,
            spec.Connection.StartOk(
                client_properties={
                    "product": "messaging.publish_connection",
                    "connection_name": name,
                    "capabilities": {"authentication_failure_close": True},
                },
                mechanism=mechanism,
                response=response,
                locale=params.locale,
            ),
        )
        tune = expect(spec.Connection.Tune)
        frame_max = min(tune.frame_max or FRAME_MAX, FRAME_MAX)
        self._body_max = frame_max - FRAME_OVERHEAD
        self._send_method(
            0, spec.Connection.TuneOk(channel_max=1, frame_max=frame_max, heartbeat=0)
        )
        self._send_method(0, spec.Connection.Open(virtual_host=params.virtual_host))
        expect(spec.Connection.OpenOk)
        self._send_method(CHANNEL, spec.Channel.Open())
        expect(spec.Channel.OpenOk)
        self._send_method(CHANNEL, spec.Confirm.Select())
        expect(spec.Confirm.SelectOk)

    def _next_method(self, deadline: float, what: str) -> Any:
        """The next method frame of the handshake or the close (closes from the broker raise)."""
        while True:
            consumed, received = frame.decode_frame(self._incoming)
            if received is None:
                self._read(deadline, what)
                continue
            self._incoming = self._incoming[consumed:]
            if isinstance(received, frame.Method):
                self._closed_by_broker(received.method)
                return received.method

    # -- reading the broker's answers ---------------------------------------------------------

    @property
    def _confirms(self) -> str:
        """What a confirm wait waits for, and how long (for the error when nothing comes)."""
        return f"publisher confirms within {self._confirm_timeout:g}s"

    def _read_what_waits(self) -> None:
        if self._readable():
            seconds = self._confirm_timeout
            self._receive(time.monotonic() + seconds, f"what the broker sent, within {seconds:g}s")

    def _readable(self) -> bool:
        """Whether a read would not block (something arrived, or the stream ended)."""
        # poll, not select: a process may hold more than select's 1,024 descriptors.
        poller = select.poll()
        poller.register(self._sock, select.POLLIN)
        if poller.poll(0):
            return True
        return isinstance(self._sock, ssl.SSLSocket) and self._sock.pending() > 0

    def _receive(self, deadline: float, what: str) -> None:
        """Read once (waiting until ``deadline``) and handle every complete frame."""
        self._read(deadline, what)
        incoming, offset = self._incoming, 0
        try:
            while True:
                consumed, received = frame.decode_frame(incoming[offset:] if offset else incoming)
                if received is None:
                    break
                offset += consumed
                self._handle(received)
        finally:
            self._incoming = incoming[offset:]

    def _read(self, deadline: float, what: str) -> None:
        """``what``: what it waits for, and how long (for the error when nothing comes)."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._broken(ConfirmTimeout(f"no {what}"))
        self._sock.settimeout(remaining)
        try:
            data = self._sock.recv(65536)
        except TimeoutError:
            raise self._broken(ConfirmTimeout(f"no {what}")) from None
        except OSError as exc:
            raise self._broken(StreamLostError(f"reading {what}: {exc!r}")) from exc
        if not data:
            raise self._broken(StreamLostError(f"the broker ended the stream (waiting for {what})"))
        self._incoming += data

    def _handle(self, received: Any) -> None:
        if isinstance(received, frame.Method):
            method = received.method
            self._closed_by_broker(method)
            if isinstance(method, spec.Basic.Ack | spec.Basic.Nack):
                self._outstanding.settled(method)
            elif isinstance(method, spec.Basic.Return):
                self._returning = method
        elif isinstance(received, frame.Header) and self._returning is not None:
            self._outstanding.returned(self._returning, received.properties)
            self._returning = None
        # A returned message's body, heartbeats (none were asked for), anything else: nothing
        # to do.

    def _closed_by_broker(self, method: Any) -> None:
        # The broker's reason is the error, even when its close cannot be answered any more.
        if isinstance(method, spec.Connection.Close):
            with contextlib.suppress(StreamLostError):
                self._send_method(0, spec.Connection.CloseOk())
            raise self._broken(ConnectionClosedByBroker(method.reply_code, method.reply_text))
        if isinstance(method, spec.Channel.Close):
            with contextlib.suppress(StreamLostError):
                self._send_method(CHANNEL, spec.Channel.CloseOk())
            raise self._broken(ChannelClosedByBroker(method.reply_code, method.reply_text))

    # -- writing ------------------------------------------------------------------------------

    def _send_unsent(self) -> None:
        if self._unsent:
            data, self._unsent = bytes(self._unsent), bytearray()
            self._send(data)

    def _send_method(self, channel: int, method: Any) -> None:
        self._send(frame.Method(channel, method).marshal())

    def _send(self, data: bytes) -> None:
        self._sock.settimeout(self._timeout)
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise self._broken(StreamLostError(f"writing: {exc!r}")) from exc

    def _broken(self, exc: Exception) -> Exception:
        """``exc``, once the connection is marked done with (its socket closed)."""
        self._open = False
        with contextlib.suppress(OSError):
            self._sock.close()
        return exc
