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

Batches: every delivery the broker has already pushed (up to the prefetch) is applied in one
transaction: one multi-row inbox insert, the handlers, one multi-row insert of the events they
published (``messaging.outbox.collecting``), one commit, the events the handlers wrote published on
the thread's publish connection (``messaging.after_commit``), then one ``basic.ack`` with
``multiple``. One WAL flush and one ack per batch instead of per message, and a batch of one when
the queue is quiet, so latency does not wait for a batch to fill. A service whose consumer is off
the saga's path (notifications) sets ``MESSAGING_GATHER_MS``: after the first delivery of a batch
the consumer goes on collecting deliveries that long (or until it holds the prefetch), so
that a steady trickle of messages is applied in a few transactions rather than one each. On the
saga's path a consumer gathers only while it is busy (``MESSAGING_BUSY_GATHER_MS``, a few
milliseconds): when its last batch held several messages and the next one came within that
window of its end, messages are queuing, and waiting that long for more makes fewer, larger
batches, as a database's group commit does; a message that comes to an idle consumer is applied
at once.
If any handler in the batch raises, the whole transaction rolls back and the batch is applied
again one message per transaction, so each message still gets its own outcome as above.

Set-based handlers: a :class:`BatchHandler` also takes several messages in one call, so that it
can apply them with a fixed number of statements. Messages are applied in delivery order, and a
duplicate (already in the inbox, or twice in the batch) is left out. Consecutive messages whose
batch handlers share their ``many`` (one function may take several event types) go to it in one
call; any other message ends that run. No handler thus sees a message before one delivered
ahead of it, whatever order, product or user they touch. A batch handler may reject some of its
messages (they go to the dead-letter queue, nothing of them applied) and apply the rest.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import pika
from django.db import InterfaceError, OperationalError, models, transaction
from django.db import connection as db_connection
from django.utils.module_loading import import_string
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ConsumerCancelled
from pika.spec import Basic, BasicProperties

from messaging import after_commit, sending, topology
from messaging.config import MessagingConfig, get_config
from messaging.envelope import Envelope, MalformedMessage, decode
from messaging.metrics import record_delivery
from messaging.models import InboxMessage
from messaging.outbox import collecting
from messaging.publisher import CONFIRM_TIMEOUT_SECONDS
from messaging.worker import DATABASE_ERRORS, Job, quietly
from service_runtime import statements, tracing
from service_runtime.logging import bind

logger = logging.getLogger("messaging.consumer")

Handler = Callable[[Envelope], None]
ATTEMPT_HEADER = "x-attempt"


class RejectMessage(Exception):
    """Raised by a handler for a message that can never succeed: dead-letter it, no retries."""


# What a batch handler refused, by envelope id: each goes to the dead-letter queue.
Rejections = Mapping[str, RejectMessage]


@dataclass(frozen=True)
class BatchHandler:
    """A handler that can also apply several messages in one call.

    ``many`` gets a run of consecutive messages of the batch (see the module's docstring), in
    delivery order, and applies them in the consumer's transaction. It returns the messages it
    rejects, having applied nothing of them, and raises to have the whole batch applied again
    one message per transaction. What it does about one message alone (its events, its log
    lines) it does inside :func:`handling` of that message. ``one`` applies a single message, as
    a plain handler: a message alone, and every message of a batch that fell back.
    """

    one: Handler
    many: Callable[[Sequence[Envelope]], Rejections]

    def __call__(self, envelope: Envelope) -> None:
        self.one(envelope)


# The messages of the run a batch handler is applying, by envelope id, for handling().
_applying: contextvars.ContextVar[Mapping[str, _Ready] | None] = contextvars.ContextVar(
    "applying", default=None
)


@contextlib.contextmanager
def handling(envelope: Envelope) -> Iterator[None]:
    """Inside a batch handler: the log fields and the trace span of the delivery of ``envelope``.

    Outside one (a plain handler already runs in its delivery's context, a test calls it
    directly), nothing.
    """
    message = (_applying.get() or {}).get(envelope.id)
    if message is None:
        yield
        return
    with message.context():
        yield


@dataclass(frozen=True)
class Outcome:
    action: str  # "ack", "retry" or "dead"
    reason: str = ""
    attempt: int = 0


ACK = Outcome("ack")


def record_many_in_inbox(consumer: str, envelopes: Sequence[Envelope]) -> set[str]:
    """Insert the inbox rows of a batch in one statement; the ids not applied before.

    The statement also marks sent the events the consumer's last batch published
    (``after_commit.defer_marks``). On PostgreSQL it takes the rows as one JSON parameter, so its
    text is the same for any batch and it is prepared (``service_runtime.statements``): planned
    each time, it cost PostgreSQL about twice its work."""
    if not envelopes:
        return set()
    processed_at = datetime.now(UTC)
    with after_commit.carrying_marks() as (marked_at, marks):
        if db_connection.vendor == "postgresql":
            rows = json.dumps([[str(envelope.id), envelope.type] for envelope in envelopes])
            params = [consumer, processed_at, rows]
            if marks:  # the marks of the events the consumer's last batch published ride along
                sql, params = _inbox_insert_sql(carrying_marks=True), [marked_at, marks, *params]
            else:
                sql = _inbox_insert_sql(carrying_marks=False)
            return {str(row[0]) for row in statements.execute(sql, params, prepared=True)}
        id_field = _field("message_id")
        at = _field("processed_at").get_db_prep_value(processed_at, db_connection)
        values: list[Any] = []
        for envelope in envelopes:
            values += [
                consumer,
                id_field.get_db_prep_value(envelope.id, db_connection),
                envelope.type,
                at,
            ]
        rows = ", ".join(["(%s, %s, %s, %s)"] * len(envelopes))
        insert = (
            f"INSERT INTO {InboxMessage._meta.db_table} "  # noqa: S608
            f"(consumer, message_id, message_type, processed_at) VALUES {rows} "
            "ON CONFLICT (consumer, message_id) DO NOTHING RETURNING message_id"
        )
        new = statements.execute(insert, values)  # no marks waiting on SQLite
        return {str(id_field.to_python(row[0])) for row in new}


@functools.cache
def _inbox_insert_sql(*, carrying_marks: bool) -> str:
    """The inbox rows of a batch, from a JSON array of [message id, type] (PostgreSQL); and
    the carried marks, if asked."""
    insert = (
        f"INSERT INTO {InboxMessage._meta.db_table} "  # noqa: S608 (a table name, not input)
        "(consumer, message_id, message_type, processed_at) "
        "SELECT %s, (m ->> 0)::uuid, m ->> 1, %s FROM jsonb_array_elements(%s::jsonb) AS r (m) "
        "ON CONFLICT (consumer, message_id) DO NOTHING RETURNING message_id"
    )
    return f"WITH {sending.carried_mark()} {insert}" if carrying_marks else insert


def forget_in_inbox(consumer: str, message_ids: Sequence[str]) -> None:
    """Delete inbox rows written earlier in this transaction for messages not applied."""
    InboxMessage.objects.filter(consumer=consumer, message_id__in=message_ids).delete()


def _field(name: str) -> models.Field[Any, Any]:
    return cast("models.Field[Any, Any]", InboxMessage._meta.get_field(name))


def attempt_of(properties: BasicProperties) -> int:
    """The delivery attempt a message is on (1 for the first); a garbled header counts as 1."""
    value = (properties.headers or {}).get(ATTEMPT_HEADER, 1)
    try:
        return max(1, int(value))
    except (TypeError, ValueError, OverflowError):
        return 1


@dataclass
class Item:
    """One message of a batch: its body, its attempt, and the context to apply it in."""

    body: bytes
    attempt: int = 1
    # log fields and tracing span of the delivery (the consumer's; none for a bare body)
    context: Callable[[], contextlib.AbstractContextManager[Any]] = field(
        default=contextlib.nullcontext
    )


@dataclass(frozen=True)
class _Ready:
    """A decoded message with its handler, to be applied."""

    item: Item
    envelope: Envelope
    handler: Handler

    @contextlib.contextmanager
    def context(self) -> Iterator[None]:
        """Its delivery's context, with the log fields its envelope names."""
        envelope = self.envelope
        with (
            self.item.context(),
            bind(correlation_id=envelope.correlation_id, message_id=envelope.id),
        ):
            yield


class MessageProcessor:
    """Turns message bodies into :class:`Outcome` s; knows nothing of pika."""

    def __init__(self, consumer: str, handlers: Mapping[str, Handler], max_attempts: int) -> None:
        self.consumer = consumer
        self.handlers = handlers
        self.max_attempts = max_attempts

    def process(self, body: bytes, attempt: int = 1) -> Outcome:
        """Apply one message: a batch of one."""
        return self.process_batch([Item(body, attempt)])[0]

    def process_batch(self, items: Sequence[Item]) -> list[Outcome]:
        """Apply several messages in one transaction, one outcome each, in order.

        Database outages propagate as ``DatabaseError``, with nothing applied. When a handler
        fails, its batch is applied again one message per transaction, so each message still
        gets its own outcome.
        """
        if len(items) == 1:
            # Alone, a message is handled wholly inside its delivery's context: its span and log
            # fields cover its decoding and its commit too, and a malformed one has its span.
            with items[0].context():
                return self._process([Item(items[0].body, items[0].attempt)])
        return self._process(items)

    def _process(self, items: Sequence[Item]) -> list[Outcome]:
        checked = [self._check(item) for item in items]
        ready = [message for message in checked if isinstance(message, _Ready)]
        rejected = self._applied_together(ready) if len(items) > 1 and ready else None
        if rejected is None:
            return [self._apply_alone(m) if isinstance(m, _Ready) else m for m in checked]
        outcomes: list[Outcome] = []
        for message in checked:
            if not isinstance(message, _Ready):
                outcomes.append(message)
            elif message.envelope.id in rejected:
                reason = f"rejected: {rejected[message.envelope.id]}"
                outcomes.append(Outcome("dead", reason, message.item.attempt))
            else:
                outcomes.append(ACK)
        return outcomes

    def _check(self, item: Item) -> _Ready | Outcome:
        """The message decoded, with its handler; or why it is dead at once."""
        try:
            envelope = decode(item.body)
        except MalformedMessage as exc:
            return Outcome("dead", f"malformed: {exc}", item.attempt)
        handler = self.handlers.get(envelope.type)
        if handler is None:
            reason = f"no handler for {envelope.type!r} in {self.consumer}"
            return Outcome("dead", reason, item.attempt)
        return _Ready(item, envelope, handler)

    def _applied_together(self, messages: Sequence[_Ready]) -> Rejections | None:
        """Apply the messages in one transaction: those a batch handler rejected (nothing of
        them applied, the rest applied), or None, nothing applied at all, when one failed."""
        try:
            with transaction.atomic(), collecting():
                fresh = record_many_in_inbox(self.consumer, [m.envelope for m in messages])
                new = []
                for message in messages:
                    if message.envelope.id in fresh:  # not applied before nor earlier in the batch
                        fresh.discard(message.envelope.id)
                        new.append(message)
                rejected: dict[str, RejectMessage] = {}
                for run in _runs(new):
                    rejected.update(_apply_run(run))
                if rejected:
                    forget_in_inbox(self.consumer, list(rejected))
            return rejected
        except Exception as exc:
            # A lost race falls back too: a batch holds the locks of all its messages, so two
            # consumers' batches can deadlock where single messages (each locking in a fixed
            # order) cannot. Any other database error means the database is unavailable.
            if isinstance(exc, OperationalError | InterfaceError) and not _lost_a_race(exc):
                raise  # nothing was applied: try again later
            logger.info(
                "a batch of %d failed together (%s: %s); applying its messages one by one",
                len(messages),
                type(exc).__name__,
                exc,
            )
            return None

    def _apply_alone(self, message: _Ready) -> Outcome:
        envelope, attempt = message.envelope, message.item.attempt
        with message.context():
            try:
                with transaction.atomic(), collecting():
                    if record_many_in_inbox(self.consumer, [envelope]):
                        message.handler(envelope)
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


def _runs(messages: Sequence[_Ready]) -> Iterator[list[_Ready]]:
    """The messages in delivery order, consecutive ones for one ``many`` together."""
    run: list[_Ready] = []
    for message in messages:
        many = _many(message)
        if run and (many is None or many != _many(run[0])):
            yield run
            run = []
        run.append(message)
    if run:
        yield run


def _many(message: _Ready) -> Callable[[Sequence[Envelope]], Rejections] | None:
    return message.handler.many if isinstance(message.handler, BatchHandler) else None


def _apply_run(run: Sequence[_Ready]) -> Rejections:
    """Apply a run: by its batch handler in one call, or a message alone by its handler."""
    many = _many(run[0])
    if len(run) == 1 or many is None:
        for message in run:
            with message.context():
                message.handler(message.envelope)
        return {}
    token = _applying.set({message.envelope.id: message for message in run})
    try:
        rejected = many([message.envelope for message in run])
    finally:
        _applying.reset(token)
    return {
        message.envelope.id: rejected[message.envelope.id]
        for message in run
        if message.envelope.id in rejected
    }


class Consumer(Job):
    """Consumes the service's queue until stopped; reconnects to broker and database by itself."""

    name = "consumer"
    log = logger
    broker_name = "consumer"
    poll_seconds = 0.5  # woken by deliveries; this often it checks the stop event
    start_line = "consumer for {queue} starting"
    stop_line = "consumer stopped after {handled} messages"
    config: MessagingConfig

    def __init__(
        self, handlers: Mapping[str, Handler] | None = None, config: MessagingConfig | None = None
    ) -> None:
        super().__init__()
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
        self.handled = 0
        self._channel: BlockingChannel | None = None
        self._pending: list[_Delivery] = []
        self._first_at = 0.0  # time.monotonic() of the first pending delivery
        # The last batch applied: its size and when it ended (time.monotonic()).
        self._last_size = 0
        self._last_ended = float("-inf")

    def on_connect(self) -> None:
        assert self.broker is not None
        # The events its handlers write go out right after each commit (on the thread's publish
        # connection, before the batch is acked); their confirms are read while the next batch
        # runs, whose first statement marks them sent. When it does wait for them (idle, or
        # stopping), it may wait as long as the relay would.
        after_commit.wait_for_confirms(CONFIRM_TIMEOUT_SECONDS)
        after_commit.defer_marks()
        after_commit.pipeline_confirms()
        channel = self.broker.channel()
        # Its own queues and bindings only; the exchanges are their publishers' (a missing one
        # fails the bind, and the consumer retries until its publisher declared it).
        channel = topology.declare_consumer_queues(
            channel, self.names, self.config.service, self.config.retry_delays_ms
        )
        channel.confirm_delivery()
        channel.basic_qos(prefetch_count=self.config.prefetch)
        channel.add_on_cancel_callback(self._on_cancelled_by_broker)
        channel.basic_consume(self.queue, self._on_message)
        logger.info("consuming %s", self.queue)

    def _disconnect(self) -> None:
        if self.stop_event.is_set():
            # A stop, not a lost connection: what waits is marked before the connections close.
            quietly(after_commit.flush_marks)
            after_commit.close_connection()
        super()._disconnect()

    def on_disconnect(self) -> None:
        self._channel = None
        self._pending = []  # unacked: the broker hands them out again

    def delivered(self) -> bool:
        return bool(self._pending)

    def work(self) -> bool:
        # The deliveries the broker pushed while the consumer waited (and gathered) form a batch.
        self._gather()
        if self._pending:
            self.process_pending()
        elif after_commit.marks_waiting():
            # The marks of what the last batch published ride along with the next batch's inbox
            # insert (``after_commit.defer_marks``); none came within the wait: written alone.
            after_commit.flush_marks()
        return False

    def wait_seconds(self) -> float:
        if after_commit.marks_waiting():
            return min(super().wait_seconds(), after_commit.MARK_IDLE_SECONDS)
        return super().wait_seconds()

    def gather_window(self) -> float:
        """How long after the first pending delivery the consumer goes on collecting: always
        ``gather_seconds`` if set; else ``busy_gather_seconds`` while busy (the last batch held
        several messages and the first pending one came within that window of its end), else 0.
        """
        if self.config.gather_seconds > 0:
            return self.config.gather_seconds
        window = self.config.busy_gather_seconds
        busy = self._last_size > 1 and self._first_at - self._last_ended <= window
        return window if busy else 0.0

    def _gather(self) -> None:
        """Go on collecting deliveries until :meth:`gather_window` after the first pending one,
        or until the prefetch is reached (the broker sends no more before an ack)."""
        if not self._pending or self.broker is None:
            return
        seconds = self.gather_window()
        if seconds <= 0:
            return
        deadline = self._first_at + seconds
        while len(self._pending) < self.config.prefetch and not self.stop_event.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.broker.process_data_events(time_limit=remaining)  # returns on a delivery
        self.healthy_at = time.monotonic()

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
        """Called by pika for each delivery: collected, applied with the rest of its batch."""
        if not self._pending:
            self._first_at = time.monotonic()
        self._channel = channel
        self._pending.append(_Delivery(self.queue, method, properties, body))

    def process_pending(self) -> None:
        """Apply every collected delivery as one batch, copy retries and dead letters, ack."""
        if not self._pending:
            return
        assert self._channel is not None
        channel = self._channel
        # Deliveries that arrive while this batch waits for the database form the next one.
        batch, self._pending = self._pending, []
        started = time.perf_counter()
        outcomes = self._process_until_database_answers(batch)
        if outcomes is None:
            return  # stopping: left unacked, the broker redelivers them once we disconnect
        for delivery, outcome in zip(batch, outcomes, strict=True):
            if outcome.action != "ack":
                props = delivery.properties
                with bind(correlation_id=props.correlation_id, message_id=props.message_id):
                    self._copy_for(channel, delivery, outcome)
        # Every earlier delivery on this channel is settled: one ack covers the whole batch.
        channel.basic_ack(batch[-1].method.delivery_tag, multiple=len(batch) > 1)
        self.handled += len(batch)
        self._last_size, self._last_ended = len(batch), time.monotonic()
        seconds = (time.perf_counter() - started) / len(batch)
        for outcome in outcomes:
            record_delivery(self.queue, outcome.action, seconds)

    def _copy_for(self, channel: BlockingChannel, delivery: _Delivery, outcome: Outcome) -> None:
        method, properties, body = delivery.method, delivery.properties, delivery.body
        attempt = outcome.attempt or delivery.attempt
        if outcome.action == "retry":
            delay = self.config.retry_delays_ms[min(attempt, len(self.config.retry_delays_ms)) - 1]
            self._copy(
                channel,
                properties,
                body,
                self.names.retry_exchange(self.config.service),
                self.names.retry_queue(self.config.service, delay),
                {ATTEMPT_HEADER: attempt + 1, "x-last-error": outcome.reason[:1000]},
            )
        elif outcome.action == "dead":
            logger.error("dead-lettering a message from %s: %s", self.queue, outcome.reason[:500])
            self._copy(
                channel,
                properties,
                body,
                self.names.dead_letter_exchange(self.config.service),
                self.names.dead_letter_queue(self.config.service),
                {
                    ATTEMPT_HEADER: attempt,
                    "x-death-reason": outcome.reason[:4000],
                    "x-original-exchange": method.exchange,
                    "x-original-routing-key": method.routing_key,
                    "x-dead-lettered-at": datetime.now(UTC).isoformat(),
                },
            )

    def _process_until_database_answers(self, batch: Sequence[_Delivery]) -> list[Outcome] | None:
        """The outcomes, once the database answers; None if asked to stop before it does."""
        items = [Item(d.body, d.attempt, d.context) for d in batch]

        def process() -> list[Outcome]:
            self._database.before_work()
            outcomes = self.processor.process_batch(items)
            self._database.answered()
            return outcomes

        try:
            return self.until_database_answers(process)
        except DATABASE_ERRORS:
            return None

    def _copy(
        self,
        channel: BlockingChannel,
        properties: BasicProperties,
        body: bytes,
        exchange: str,
        queue: str,
        extra_headers: dict[str, Any],
    ) -> None:
        """Publish a copy to ``queue`` through the service's own ``exchange``, which routes by
        queue name (never the default exchange: the service's account may not write there)."""
        headers = {**(properties.headers or {}), **extra_headers}
        channel.basic_publish(
            exchange=exchange,
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


@dataclass
class _Delivery:
    queue: str
    method: Basic.Deliver
    properties: BasicProperties
    body: bytes

    @property
    def attempt(self) -> int:
        return attempt_of(self.properties)

    @contextlib.contextmanager
    def context(self) -> Iterator[None]:
        """The delivery's log fields and its ``consume`` span (parent: its headers)."""
        method, properties = self.method, self.properties
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
            yield


# SQLSTATEs of a transaction that lost to another one, not of a database that went away.
_RACE_SQLSTATES = frozenset({"40P01", "40001", "55P03"})  # deadlock, serialization, lock wait


def _lost_a_race(exc: Exception) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) in _RACE_SQLSTATES
