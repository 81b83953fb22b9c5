"""Idempotent consumers: inbox row and handler effect in one transaction, ack after commit.

Outcome of one delivery:

* applied, or already applied (the inbox row exists): ack;
* malformed (bad JSON, bad envelope, unknown type, schema violation) or rejected by its
  handler with :class:`RejectMessage`: copied to the dead-letter queue at once, then ack;
* the handler raised anything else: copied to the next retry queue (which dead-letters it
  back after its delay), then ack; after the last retry it goes to the dead-letter queue;
* the database is unreachable: nothing is acked; the consumer waits with back-off, keeping
  the broker connection alive, and tries the same delivery again (if it is asked to stop
  meanwhile, it leaves the delivery unacked and the broker hands it out again).

A copy is acked only after the broker confirmed the copy, so a delivery is never lost.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import pika
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    models,
    transaction,
)
from django.db import connection as db_connection
from django.utils.module_loading import import_string
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import ConsumerCancelled
from pika.spec import Basic, BasicProperties

from messaging import topology
from messaging.broker import CONNECTION_ERRORS, backoff_delays, connect
from messaging.config import MessagingConfig, get_config
from messaging.envelope import Envelope, MalformedMessage, decode
from messaging.metrics import record_delivery
from messaging.models import InboxMessage
from messaging.worker import Heartbeat
from service_runtime import tracing
from service_runtime.logging import bind

logger = logging.getLogger("messaging.consumer")

Handler = Callable[[Envelope], None]
ATTEMPT_HEADER = "x-attempt"


class RejectMessage(Exception):
    """Raised by a handler for a message that can never succeed: dead-letter it, no retries."""


@dataclass(frozen=True)
class Outcome:
    action: str  # "ack", "retry" or "dead"
    reason: str = ""
    attempt: int = 0


ACK = Outcome("ack")


def record_in_inbox(consumer: str, envelope: Envelope) -> bool:
    """Insert the inbox row; False when this consumer has already applied the message."""
    table = InboxMessage._meta.db_table
    message_id = _field("message_id").get_db_prep_value(envelope.id, db_connection)
    processed_at = _field("processed_at").get_db_prep_value(datetime.now(UTC), db_connection)
    with db_connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (consumer, message_id, message_type, processed_at) "  # noqa: S608
            "VALUES (%s, %s, %s, %s) ON CONFLICT (consumer, message_id) DO NOTHING",
            [consumer, message_id, envelope.type, processed_at],
        )
        return cursor.rowcount == 1


def _field(name: str) -> models.Field[Any, Any]:
    return cast("models.Field[Any, Any]", InboxMessage._meta.get_field(name))


def attempt_of(properties: BasicProperties) -> int:
    """The delivery attempt a message is on (1 for the first); a garbled header counts as 1."""
    value = (properties.headers or {}).get(ATTEMPT_HEADER, 1)
    try:
        return max(1, int(value))
    except (TypeError, ValueError, OverflowError):
        return 1


class MessageProcessor:
    """Turns one message body into an :class:`Outcome`; knows nothing of pika."""

    def __init__(self, consumer: str, handlers: Mapping[str, Handler], max_attempts: int) -> None:
        self.consumer = consumer
        self.handlers = handlers
        self.max_attempts = max_attempts

    def process(self, body: bytes, attempt: int = 1) -> Outcome:
        """Apply the message once. Database outages propagate as ``DatabaseError``."""
        try:
            envelope = decode(body)
        except MalformedMessage as exc:
            return Outcome("dead", f"malformed: {exc}", attempt)
        with bind(correlation_id=envelope.correlation_id, message_id=envelope.id):
            return self._apply(envelope, attempt)

    def _apply(self, envelope: Envelope, attempt: int) -> Outcome:
        handler = self.handlers.get(envelope.type)
        if handler is None:
            return Outcome("dead", f"no handler for {envelope.type!r} in {self.consumer}", attempt)
        try:
            with transaction.atomic():
                if record_in_inbox(self.consumer, envelope):
                    handler(envelope)
        except (OperationalError, InterfaceError):
            raise
        except RejectMessage as exc:
            return Outcome("dead", f"rejected: {exc}", attempt)
        except Exception as exc:
            logger.exception("handler for %s failed (attempt %d)", envelope.type, attempt)
            reason = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
            if attempt >= self.max_attempts:
                return Outcome("dead", f"failed {attempt} times: {reason}", attempt)
            return Outcome("retry", reason, attempt)
        return ACK


class Consumer:
    """Consumes the service's queue until stopped; reconnects to broker and database by itself."""

    def __init__(
        self, handlers: Mapping[str, Handler] | None = None, config: MessagingConfig | None = None
    ) -> None:
        self.config = config or get_config()
        if handlers is None:
            if not self.config.handlers_path:
                raise RuntimeError("settings.MESSAGING_HANDLERS is not set")
            handlers = import_string(self.config.handlers_path)
        assert handlers is not None
        self.processor = MessageProcessor(
            self.config.service, handlers, max_attempts=self.config.max_attempts
        )
        self.names = self.config.names
        self.queue = self.names.queue(self.config.service)
        self.stop_event = threading.Event()
        self.handled = 0
        self.heartbeat = Heartbeat(None)  # run_consumer gives it a file: ready while consuming
        self._broker: BlockingConnection | None = None

    def run_forever(self) -> None:
        delays = backoff_delays()
        while not self.stop_event.is_set():
            try:
                self._broker = connect(self.config, name="consumer")
                channel = self._broker.channel()
                # Its own queues and bindings only; the exchanges are their publishers' (a missing
                # one fails the bind, and the consumer retries until its publisher declared it).
                topology.declare_consumer_queues(
                    channel, self.names, self.config.service, self.config.retry_delays_ms
                )
                channel.confirm_delivery()
                channel.basic_qos(prefetch_count=self.config.prefetch)
                channel.add_on_cancel_callback(self._on_cancelled_by_broker)
                channel.basic_consume(self.queue, self._on_message)
                logger.info("consuming %s", self.queue)
                delays = backoff_delays()
                while not self.stop_event.is_set():
                    self._broker.process_data_events(time_limit=0.5)
                    self.heartbeat.beat()
            except CONNECTION_ERRORS as exc:
                delay = next(delays)
                logger.warning("consumer lost the broker (%s); retrying in %.1fs", exc, delay)
                self.stop_event.wait(delay)
            finally:
                if self._broker is not None and self._broker.is_open:
                    try:
                        self._broker.close()
                    except Exception:  # already broken
                        logger.debug("ignored error while closing", exc_info=True)
                self._broker = None

    def _on_cancelled_by_broker(self, method_frame: Any) -> None:
        # The queue was deleted (or its node went away): without this the consumer would sit
        # idle on an open connection forever. Reconnecting declares the queue again.
        raise ConsumerCancelled(f"the broker cancelled consuming {self.queue}")

    def _on_message(
        self,
        channel: BlockingChannel,
        method: Basic.Deliver,
        properties: BasicProperties,
        body: bytes,
    ) -> None:
        """One delivery, in its log context and its ``consume`` span (parent: its headers)."""
        with (
            bind(correlation_id=properties.correlation_id, message_id=properties.message_id),
            tracing.consume_span(
                queue=self.queue,
                exchange=method.exchange or "",
                routing_key=method.routing_key or "",
                message_id=properties.message_id or "",
                correlation_id=properties.correlation_id or "",
                headers=properties.headers,
            ),
        ):
            self._handle_delivery(channel, method, properties, body)

    def _handle_delivery(
        self,
        channel: BlockingChannel,
        method: Basic.Deliver,
        properties: BasicProperties,
        body: bytes,
    ) -> None:
        attempt = attempt_of(properties)
        started = time.perf_counter()
        outcome = self._process_until_database_answers(body, attempt)
        if outcome is None:
            return  # stopping: left unacked, the broker redelivers it once we disconnect
        if outcome.action == "retry":
            delay = self.config.retry_delays_ms[min(attempt, len(self.config.retry_delays_ms)) - 1]
            self._copy(
                channel,
                properties,
                body,
                self.names.retry_queue(self.config.service, delay),
                {ATTEMPT_HEADER: attempt + 1, "x-last-error": outcome.reason[:1000]},
            )
        elif outcome.action == "dead":
            logger.error("dead-lettering a message from %s: %s", self.queue, outcome.reason[:500])
            self._copy(
                channel,
                properties,
                body,
                self.names.dead_letter_queue(self.config.service),
                {
                    ATTEMPT_HEADER: attempt,
                    "x-death-reason": outcome.reason[:4000],
                    "x-original-exchange": method.exchange,
                    "x-original-routing-key": method.routing_key,
                    "x-dead-lettered-at": datetime.now(UTC).isoformat(),
                },
            )
        channel.basic_ack(method.delivery_tag)
        self.handled += 1
        record_delivery(self.queue, outcome.action, time.perf_counter() - started)

    def _process_until_database_answers(self, body: bytes, attempt: int) -> Outcome | None:
        """The outcome, once the database answers; None if asked to stop before it does."""
        delays = backoff_delays()
        while True:
            try:
                close_old_connections()
                return self.processor.process(body, attempt)
            except DatabaseError as exc:
                if self.stop_event.is_set():
                    return None
                delay = next(delays)
                logger.warning("database unavailable (%s); retrying in %.1fs", exc, delay)
                _close_database_quietly()
                self._sleep_unless_stopped(delay)

    def _sleep_unless_stopped(self, seconds: float) -> None:
        """Wait on the broker connection, so heartbeats keep flowing, until stopped."""
        assert self._broker is not None
        deadline = time.monotonic() + seconds
        while not self.stop_event.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._broker.sleep(min(remaining, 0.25))

    def _copy(
        self,
        channel: BlockingChannel,
        properties: BasicProperties,
        body: bytes,
        queue: str,
        extra_headers: dict[str, Any],
    ) -> None:
        headers = {**(properties.headers or {}), **extra_headers}
        channel.basic_publish(
            exchange="",
            routing_key=queue,
            body=body,
            properties=pika.BasicProperties(
                content_type=properties.content_type,
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=properties.message_id,
                correlation_id=properties.correlation_id,
                type=properties.type,
                app_id=properties.app_id,
                headers=headers,
            ),
            mandatory=True,
        )


def _close_database_quietly() -> None:
    try:
        db_connection.close()
    except DatabaseError:  # already broken; a new connection is opened on the next try
        logger.debug("ignored error while closing the database connection", exc_info=True)
