"""Publishing a transaction's events right after it commits; the outbox is the safety net.

``publish_event`` writes the outbox row in the caller's transaction and hands it here. When the
transaction commits, the rows that committed with it (not those of a rolled-back savepoint) go
out on this thread's channel with publisher confirms and ``mandatory``, and the confirmed ones
are marked sent in one ``UPDATE``, a transaction of its own that does not wait for the WAL
flush. Whatever fails (no broker, a timeout, a refusal, the database) leaves the rows unsent and
the caller carries on: the relay sends every row still unsent ``MESSAGING_RELAY_GRACE_SECONDS``
after it was written.

One broker connection per thread, opened on first use in the process that uses it (never one
inherited across a fork, never shared between threads). A consumer lends its own connection
instead (:func:`use_connection`): the events of its batch go out on a channel of their own on
it, before the batch is acked. A connection of its own waits at most ``TIMEOUT_SECONDS`` to
connect and as long for the confirms, so a broker outage costs a web request a second or two at
worst, and then no attempt is made for ``BACKOFF_SECONDS``; one that idled longer than the
heartbeat interval (pika only answers heartbeats while it is called) is replaced before use,
and one found dead is reopened once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence

from django.db import DatabaseError, connection, transaction
from pika.adapters.blocking_connection import BlockingConnection
from pika.exceptions import ChannelClosed, ChannelWrongStateError

from messaging import crash_points, sending
from messaging.broker import CONNECTION_ERRORS, close_quietly, connect
from messaging.config import MessagingConfig
from messaging.metrics import record_published
from messaging.models import OutboxMessage
from messaging.publisher import ConfirmingPublisher, ConfirmTimeout
from service_runtime import transactions

logger = logging.getLogger("messaging.after_commit")

TIMEOUT_SECONDS = 1.0  # connecting, and waiting for the confirms, on a connection of its own
BACKOFF_SECONDS = 5.0  # after a failure, leave every event to the relay this long


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
    leave them to the relay."""
    crash_points.reach(crash_points.AFTER_COMMIT)
    user_id = sending.broker_user(config.broker_url)
    for attempt in (1, 2):
        reused = _link.ready()
        try:
            publisher = _link.publisher(config)
            if publisher is None:
                return  # no connection to use now: the relay sends them
            for row in rows:
                sending.send(publisher, row, app_id=config.service, user_id=user_id)
            settled = publisher.wait()
            break
        except CONNECTION_ERRORS as exc:
            # A connection of its own that was open may have died while idle: reopen it once.
            again = (
                attempt == 1 and reused and not _link.lent and not isinstance(exc, ConfirmTimeout)
            )
            _link.failed(exc, back_off=not again)
            if not again:
                logger.warning(
                    "could not publish %d event(s) after commit (%s: %s); the relay will",
                    len(rows),
                    type(exc).__name__,
                    exc,
                )
                return
    crash_points.reach(crash_points.AFTER_PUBLISH)
    outcome = sending.settle(rows, settled)
    try:
        with transactions.alone():  # the mark is one statement
            sending.record(outcome)
    except DatabaseError as exc:  # published, not marked: the relay sends them again
        logger.warning("could not mark %d published event(s) sent: %s", len(rows), exc)
        return
    record_published(row.routing_key for row in outcome.confirmed)
    sending.log_refused(outcome, what="event(s) after commit (the relay will retry)")


def use_connection(broker: BlockingConnection | None) -> None:
    """Publish this thread's events on ``broker`` (a consumer's own connection, which it keeps
    alive), on a channel of their own; ``None``: on a connection of the thread's own again (the
    consumer lost its connection)."""
    _link.reset(broker)


class _Link(threading.local):
    """This thread's way to the broker: a connection and a channel in confirm mode."""

    def __init__(self) -> None:
        self.broker: BlockingConnection | None = None
        self.lent = False  # the connection is a consumer's: never closed or reopened here
        self.confirming: ConfirmingPublisher | None = None
        self.pid = os.getpid()
        self.used_at = 0.0
        self.resume_at = 0.0

    def reset(self, broker: BlockingConnection | None) -> None:
        self._close()
        self.broker, self.lent, self.confirming = broker, broker is not None, None
        self.pid, self.resume_at = os.getpid(), 0.0

    def ready(self) -> bool:
        """Whether a channel is already open (a failure on it may just mean it went stale)."""
        return self.confirming is not None and self.pid == os.getpid()

    def publisher(self, config: MessagingConfig) -> ConfirmingPublisher | None:
        now = time.monotonic()
        if self.pid != os.getpid():
            # Inherited across a fork: the socket is the parent's, so leave it alone.
            self.broker, self.lent, self.confirming, self.pid = None, False, None, os.getpid()
        if not self.lent:
            if now < self.resume_at:
                return None
            idle = config.heartbeat > 0 and now - self.used_at > config.heartbeat
            if self.broker is not None and (idle or not self.broker.is_open):
                self._close()
            if self.broker is None:
                self.broker = connect(config, name="writer", timeout=TIMEOUT_SECONDS)
        if self.broker is None:
            return None  # the consumer lost its connection and has not lent the next one
        if self.confirming is None:
            timeout = {} if self.lent else {"confirm_timeout": TIMEOUT_SECONDS}
            self.confirming = ConfirmingPublisher(self.broker, self.broker.channel(), **timeout)
        self.used_at = now
        return self.confirming

    def failed(self, exc: BaseException, *, back_off: bool) -> None:
        """Drop what failed: the channel, and its connection unless only the channel failed.

        A consumer's connection is closed too when the connection failed, or when the error
        came from one of the consumer's own pika callbacks run while waiting here: the consumer
        then reconnects as after any broker error, and its batch, delivered again, is absorbed
        by its inbox.
        """
        channel_only = isinstance(exc, ChannelClosed | ChannelWrongStateError | ConfirmTimeout)
        if self.lent and channel_only and self.broker is not None and self.broker.is_open:
            self._close_channel()
            return
        if self.lent:
            self._close_channel()
            broker, self.broker = self.broker, None
            close_quietly(broker)
            return
        self._close()
        if back_off:
            self.resume_at = time.monotonic() + BACKOFF_SECONDS

    def _close_channel(self) -> None:
        confirming, self.confirming = self.confirming, None
        if confirming is not None:
            confirming.close()

    def _close(self) -> None:
        """Close the channel, and the connection if it is this thread's own."""
        self._close_channel()
        broker, self.broker = self.broker, None
        if broker is not None and not self.lent and self.pid == os.getpid():
            close_quietly(broker)


_link = _Link()
