"""Publishing a transaction's events right after it commits; the outbox is the safety net.

``publish_event`` writes the outbox row in the caller's transaction and hands it here. When the
transaction commits, the rows that committed with it (not those of a rolled-back savepoint) go
out on this thread's channel with publisher confirms and ``mandatory``, and the confirmed ones
are marked sent in one ``UPDATE``, a transaction of its own that does not wait for the WAL
flush. Whatever fails (no broker, a timeout, a refusal, the database) leaves the rows unsent and
the caller carries on: the relay sends every row still unsent ``MESSAGING_RELAY_GRACE_SECONDS``
after it was written.

A thread that keeps working (a web server's worker, a consumer) may leave the marks to its next
statement instead (:func:`defer_marks`): the confirmed rows wait until a statement of its next
transaction carries their marks (:func:`carrying_marks`: the order's insert, a batch's inbox
insert), which saves the mark's round trip and transaction. When the thread idles first (for
``MARK_IDLE_SECONDS``), it marks them in a statement of their own (:func:`flush_marks`); rows
waiting longer than ``MARK_AGE_LIMIT_SECONDS`` are marked with the next ones at once. Marks that
never come (a crash) only let the relay publish those rows again, which the consumers' inbox
absorbs.

A consumer does not even wait for its confirms (:func:`pipeline_confirms`): its batch's events
are sent, the batch is acked, and the confirms are read while the next batch runs (by that
batch's statement that carries marks, or before its events go out), or when the consumer idles.
Its rows are committed before they are sent, so a confirm that never comes (a refusal, a broken
connection, a crash) leaves its row to the relay, as above.

One publish connection per thread (:mod:`messaging.publish_connection`: its frames written and
read on its own socket, without pika's I/O loop), opened on first use in the process that uses
it (never one inherited across a fork, never shared between threads); a consumer's thread has
one beside its consuming connection, and its batch's events go out on it before the batch is
acked. Connecting waits at most ``TIMEOUT_SECONDS``, and so do the confirms unless the thread
asked for longer (:func:`wait_for_confirms`), so a broker outage costs a web request a second
or two at worst, and then no attempt is made for ``BACKOFF_SECONDS``; a connection that idled
longer than the heartbeat interval is replaced before use, and one found dead is reopened once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from django.db import DatabaseError, connection, transaction

from messaging import crash_points, sending
from messaging.broker import CONNECTION_ERRORS
from messaging.config import MessagingConfig
from messaging.metrics import record_published
from messaging.models import OutboxMessage
from messaging.publish_connection import PublishConnection
from messaging.publisher import ConfirmTimeout, Settled
from service_runtime import transactions

logger = logging.getLogger("messaging.after_commit")

TIMEOUT_SECONDS = 1.0  # connecting, and waiting for the confirms, on a connection of its own
BACKOFF_SECONDS = 5.0  # after a failure, leave every event to the relay this long
# Deferred marks: how long an idle thread waits for a statement to carry them, and the most a
# confirmed row waits unmarked (well inside the relay's grace, one second by default).
MARK_IDLE_SECONDS = 0.1
MARK_AGE_LIMIT_SECONDS = 0.25


def register(row: OutboxMessage, config: MessagingConfig) -> None:
    """Publish ``row`` once the current transaction commits, with the rest of its events."""
    marker = _Committed(row)
    transaction.on_commit(marker)
    hooks = connection.run_on_commit
    # The flush runs after every marker of the transaction: it moves to the end each time.
    for index in range(len(hooks) - 1, -1, -1):
        flush = hooks[index][1]
        if isinstance(flush, _Flush):
            hooks.append(hooks.pop(index))
            break
    else:
        # Registered with the first event: dropped only if that event is rolled back, and then
        # so is every event written while the flush was registered.
        flush = _Flush(config)
        transaction.on_commit(flush)
    marker.flush = flush


class _Committed:
    """Run by Django only if the savepoint, and the transaction, of its row committed."""

    def __init__(self, row: OutboxMessage) -> None:
        self.row = row
        self.flush: _Flush | None = None

    def __call__(self) -> None:
        if self.flush is not None:
            self.flush.rows.append(self.row)


class _Flush:
    """Publishes the rows whose markers ran: the transaction's committed events."""

    def __init__(self, config: MessagingConfig) -> None:
        self.config = config
        self.rows: list[OutboxMessage] = []

    def __call__(self) -> None:
        if not self.rows:
            return
        try:
            publish_committed(self.rows, self.config)
        except Exception:  # the transaction has committed: its caller must carry on
            logger.exception("publishing %d event(s) after commit failed", len(self.rows))


def publish_committed(rows: Sequence[OutboxMessage], config: MessagingConfig) -> None:
    """Publish committed rows with confirms and mark the confirmed ones sent; on any failure
    leave them to the relay. A thread that pipelines its confirms (:func:`pipeline_confirms`)
    goes on once the rows are sent: their confirms are read later (:func:`settle_in_flight`)."""
    crash_points.reach(crash_points.AFTER_COMMIT)
    settle_in_flight()  # the events of the thread's last transaction, if still out
    user_id = sending.broker_user(config.broker_url)
    for attempt in (1, 2):
        reused = _link.ready()
        try:
            publisher = _link.publisher(config)
            if publisher is None:
                return  # no connection to use now: the relay sends them
            for row in rows:
                sending.send(publisher, row, app_id=config.service, user_id=user_id)
            if _link.pipelining:
                publisher.send()
                _link.in_flight = list(rows)
                return
            settled = publisher.wait()
            break
        except CONNECTION_ERRORS as exc:
            # A connection that was open may have died while idle: reopen it once.
            again = attempt == 1 and reused and not isinstance(exc, ConfirmTimeout)
            _link.failed(back_off=not again)
            if not again:
                logger.warning(
                    "could not publish %d event(s) after commit (%s: %s); the relay will",
                    len(rows),
                    type(exc).__name__,
                    exc,
                )
                return
    _settled(rows, settled)


def settle_in_flight(*, wait: bool = True) -> None:
    """Read the confirms of the events this thread sent without waiting for them (blocking
    until they come, at most the thread's confirm timeout; with ``wait`` false, only if they
    all came already), then mark or defer the marks as :func:`publish_committed` does. A
    connection that fails meanwhile leaves them unmarked, to the relay."""
    rows, broker = _link.in_flight, _link.broker
    if rows is None:
        return
    if broker is None or not _link.ready():  # a parent's socket, inherited across a fork
        _link.in_flight = None
        return
    try:
        settled = broker.wait() if wait else broker.settled_now()
    except CONNECTION_ERRORS as exc:
        _link.failed(back_off=False)  # the next events try a new connection
        logger.warning(
            "no confirms for %d event(s) sent after commit (%s: %s); the relay will send them",
            len(rows),
            type(exc).__name__,
            exc,
        )
        return
    if settled is None:
        return  # still out: read with the next events, or when the thread idles
    _link.in_flight = None
    _settled(rows, settled)


def _settled(rows: Sequence[OutboxMessage], settled: Settled) -> None:
    """What the broker settled of ``rows``: the confirmed ones marked (or their marks
    deferred), the refused ones left unsent with the reason."""
    crash_points.reach(crash_points.AFTER_PUBLISH)
    outcome = sending.settle(rows, settled)
    record_published(row.routing_key for row in outcome.confirmed)
    if _link.deferring and connection.vendor == "postgresql" and not outcome.refused:
        _link.defer([row.message_id for row in outcome.confirmed])
        if not marks_overdue():
            return  # the thread's next statement carries the marks
        outcome = sending.Outcome()  # too old to wait longer: marked below, with the rest
    _mark(outcome)
    sending.log_refused(outcome, what="event(s) after commit (the relay will retry)")


def _mark(outcome: sending.Outcome) -> None:
    """Mark ``outcome``'s rows, and whatever marks wait, in a statement of their own."""
    waiting = _link.take_marks()
    if waiting:
        outcome.confirmed = [*outcome.confirmed, *(OutboxMessage(message_id=m) for m in waiting)]
    try:
        with transactions.alone():  # the mark is one statement
            sending.record(outcome)
    except DatabaseError as exc:  # published, not marked: the relay sends them again
        logger.warning("could not mark %d published event(s) sent: %s", len(outcome.confirmed), exc)


def defer_marks(on: bool = True) -> None:
    """Let this thread's next statements carry the marks of its confirmed events (see the
    module's docstring); it must then call :func:`flush_marks` whenever it idles."""
    _link.deferring = on


def pipeline_confirms(on: bool = True) -> None:
    """Let this thread go on as soon as its events are sent, their confirms read later: by its
    next statement that carries marks if they came by then, else when it next publishes or
    idles (:func:`flush_marks`, which it must call then). For a consumer, which acks its batch
    at the commit: an event whose confirm never comes is the outbox's, like any other."""
    _link.pipelining = on


def marks_waiting() -> bool:
    """Whether events of this thread wait for their mark (or for their confirms first)."""
    return bool(_link.marks) or _link.in_flight is not None


def marks_overdue() -> bool:
    """Whether some have waited longer than ``MARK_AGE_LIMIT_SECONDS``."""
    return bool(_link.marks) and time.monotonic() - _link.marks_since >= MARK_AGE_LIMIT_SECONDS


@contextlib.contextmanager
def carrying_marks() -> Iterator[tuple[Any, list[Any]]]:
    """Around a statement of this thread that carries the waiting marks: the parameters of
    :func:`messaging.sending.carried_mark` (no ids on SQLite, or when none wait). Once the
    statement's transaction commits they no longer wait; if it fails or rolls back, they do."""
    settle_in_flight(wait=False)  # confirms that came meanwhile: marked by this statement
    marks = list(_link.marks) if connection.vendor == "postgresql" else []
    yield sending.mark_values(marks)
    if marks:
        # Run at once when the statement was a transaction of its own.
        transaction.on_commit(lambda: _link.carried(marks))


def flush_marks() -> None:
    """Mark the waiting events of this thread sent now, in a statement of their own (once the
    confirms of those still out have come)."""
    settle_in_flight()
    if _link.marks:
        _mark(sending.Outcome())


def close_connection() -> None:
    """Close this thread's broker connection; the next event opens another."""
    _link.reset()


def wait_for_confirms(seconds: float) -> None:
    """Let this thread wait up to ``seconds`` for its confirms (``TIMEOUT_SECONDS`` by default,
    which suits a web request; a consumer, whose batch waits anyway, may wait longer)."""
    _link.confirm_timeout = seconds


class _Link(threading.local):
    """This thread's way to the broker: a publish connection with its channel in confirm mode."""

    def __init__(self) -> None:
        self.broker: PublishConnection | None = None
        self.pid = os.getpid()
        self.used_at = 0.0
        self.resume_at = 0.0
        self.confirm_timeout = TIMEOUT_SECONDS
        self.deferring = False  # marks wait for a later statement of this thread
        self.marks: list[Any] = []  # message ids confirmed, not marked sent yet
        self.marks_since = 0.0  # when the oldest of them was confirmed
        self.pipelining = False  # its events' confirms are read after it went on
        self.in_flight: list[OutboxMessage] | None = None  # sent, confirms not read yet

    def defer(self, message_ids: Sequence[Any]) -> None:
        if not self.marks:
            self.marks_since = time.monotonic()
        self.marks.extend(message_ids)

    def take_marks(self) -> list[Any]:
        marks, self.marks = self.marks, []
        return marks

    def carried(self, message_ids: Sequence[Any]) -> None:
        done = set(message_ids)
        self.marks = [m for m in self.marks if m not in done]
        if self.marks:
            # Those left were confirmed while the carrier ran: counted from now, a few
            # milliseconds short at most.
            self.marks_since = time.monotonic()

    def reset(self) -> None:
        self._close()
        self.pid, self.resume_at = os.getpid(), 0.0

    def ready(self) -> bool:
        """Whether a connection is already open (a failure on it may just mean it went stale)."""
        return self.broker is not None and self.pid == os.getpid()

    def publisher(self, config: MessagingConfig) -> PublishConnection | None:
        now = time.monotonic()
        if self.pid != os.getpid():
            # Inherited across a fork: the socket is the parent's, so leave it alone.
            self.broker, self.in_flight, self.pid = None, None, os.getpid()
        if now < self.resume_at:
            return None
        idle = config.heartbeat > 0 and now - self.used_at > config.heartbeat
        if self.broker is not None and (idle or not self.broker.is_open):
            self._close()
        if self.broker is None:
            self.broker = open_connection(config, self.confirm_timeout)
        self.used_at = now
        return self.broker

    def failed(self, *, back_off: bool) -> None:
        """Drop the connection that failed; with ``back_off``, try no other for a while."""
        self._close()
        if back_off:
            self.resume_at = time.monotonic() + BACKOFF_SECONDS

    def _close(self) -> None:
        # Confirms not read are lost with the connection: the relay sends those rows.
        broker, self.broker, self.in_flight = self.broker, None, None
        if broker is not None and self.pid == os.getpid():
            broker.close()


def open_connection(config: MessagingConfig, confirm_timeout: float) -> PublishConnection:
    """A publish connection named after the service, so an operator (or a test) can tell it
    from the others; connecting waits at most ``TIMEOUT_SECONDS``."""
    return PublishConnection(
        config.broker_url,
        name=f"{config.prefix}{config.service}:writer",
        timeout=TIMEOUT_SECONDS,
        confirm_timeout=confirm_timeout,
    )


_link = _Link()
