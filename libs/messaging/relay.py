"""The outbox relay: publishes unsent outbox rows with publisher confirms, then marks them sent.

A batch of rows goes out with its confirms in flight (``messaging.publisher``): one wait for
the broker per batch, not per row, then one ``UPDATE`` marks the confirmed rows sent.

It wakes on commit through PostgreSQL's LISTEN/NOTIFY (``publish_event`` sends the NOTIFY in
the writer's transaction), with a slow poll as a safety net; on SQLite it polls quickly. Rows
are claimed with ``SELECT … FOR UPDATE SKIP LOCKED`` so several relays can run side by side.
A row is marked sent only after the broker confirmed it; a row published but not yet marked
when the relay dies is published again, and the consumers' inbox absorbs the duplicate.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

import pika
import psycopg
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.utils import timezone
from pika.adapters.blocking_connection import BlockingConnection

from messaging import notify, topology
from messaging.broker import CONNECTION_ERRORS, backoff_delays, connect
from messaging.config import MessagingConfig, get_config
from messaging.metrics import record_published
from messaging.models import OutboxMessage
from messaging.outbox import NOTIFY_CHANNEL
from messaging.publisher import ConfirmingPublisher, OutgoingMessage, Settled
from messaging.worker import DatabaseCheck, Heartbeat
from service_runtime import tracing
from service_runtime.logging import bind

logger = logging.getLogger("messaging.relay")

SAFETY_POLL_SECONDS = 1.0
SQLITE_POLL_SECONDS = 0.05

# Errors after which the relay drops both connections and opens new ones.
_RECONNECT_ERRORS: tuple[type[BaseException], ...] = (
    *CONNECTION_ERRORS,
    DatabaseError,
    psycopg.Error,
)


class _CommitWaiter:
    """Blocks until a writer commits an outbox row (PostgreSQL NOTIFY) or a timeout passes."""

    def __init__(self) -> None:
        self._listener: psycopg.Connection[Any] | None = notify.listen(NOTIFY_CHANNEL)

    def drain(self) -> None:
        notify.drain(self._listener)

    def wait(self, broker: BlockingConnection) -> None:
        if self._listener is None:
            broker.sleep(SQLITE_POLL_SECONDS)
            return
        broker.process_data_events(time_limit=0)  # keeps heartbeats flowing
        for _ in self._listener.notifies(timeout=SAFETY_POLL_SECONDS, stop_after=1):
            pass

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()


class OutboxRelay:
    def __init__(self, config: MessagingConfig | None = None, *, batch_size: int = 200) -> None:
        self.config = config or get_config()
        self.batch_size = batch_size
        self.stop_event = threading.Event()
        self.published = 0
        self.heartbeat = Heartbeat(None)  # run_relay gives it a file: ready while relaying
        self._database = DatabaseCheck()
        self._sent_rows: list[OutboxMessage] = []
        # RabbitMQ checks user_id against the connection's account, so consumers can trust it.
        self._user_id = pika.URLParameters(self.config.broker_url).credentials.username

    def run_forever(self) -> None:
        """Relay until stopped, reconnecting to the broker and the database as needed."""
        delays = backoff_delays()
        while not self.stop_event.is_set():
            broker: BlockingConnection | None = None
            waiter: _CommitWaiter | None = None
            try:
                close_old_connections()
                broker = connect(self.config, name="outbox-relay")
                channel = broker.channel()
                # Only its own exchange: the rest of the layout belongs to its owners (and to the
                # broker's definitions), and a service's broker account may not declare it.
                topology.declare_own_exchange(channel, self.config.names, self.config.service)
                publisher = ConfirmingPublisher(broker, channel)
                waiter = _CommitWaiter()
                logger.info("outbox relay connected", extra={"service": self.config.service})
                delays = backoff_delays()
                self._relay_until_stopped(broker, publisher, waiter)
            except _RECONNECT_ERRORS as exc:
                self._database.forget()
                delay = next(delays)
                logger.warning("outbox relay lost a connection (%s); retrying in %.1fs", exc, delay)
                self.stop_event.wait(delay)
            finally:
                _close_quietly(waiter, broker)
                connection.close()

    def _relay_until_stopped(
        self, broker: BlockingConnection, publisher: ConfirmingPublisher, waiter: _CommitWaiter
    ) -> None:
        while not self.stop_event.is_set():
            waiter.drain()
            published = self.relay_batch(publisher)
            self.heartbeat.beat()
            if published < self.batch_size:
                waiter.wait(broker)

    def relay_batch(self, publisher: ConfirmingPublisher) -> int:
        """Publish one batch of unsent rows; return how many the broker confirmed.

        Every row of the batch goes out before the relay waits, once, for all the confirms
        (``ConfirmingPublisher``); the confirmed rows are then marked sent in one statement.
        """
        self._database.before_work()
        failure: BaseException | None = None
        settled = Settled()
        with transaction.atomic():
            rows = list(OutboxMessage.objects.raw(_claim_sql(), [self.batch_size]))
            if not rows:
                self._database.answered()
                return 0
            if connection.vendor == "postgresql":
                # Marking rows sent need not wait for the WAL flush: a mark lost in a crash only
                # publishes the rows again, and the consumers' inbox absorbs the duplicates.
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit TO OFF")
            self._sent_rows = []  # the row of each message published, in order
            try:
                for row in rows:
                    self._publish(publisher, row)
                settled = publisher.wait()
            except CONNECTION_ERRORS as exc:
                failure = exc  # nothing is marked: published rows go again, the inbox absorbs
            sent = self._sent_rows
            confirmed = list({sent[i].pk: sent[i] for i in settled.confirmed}.values())
            if confirmed:
                _mark_sent([row.pk for row in confirmed])
            taken = {row.pk for row in confirmed}  # a copy refused beside a copy taken is sent
            refused = {
                sent[i].pk: (sent[i], why)
                for i, why in settled.refused.items()
                if sent[i].pk not in taken
            }
            for row, reason in refused.values():
                # Kept unsent: no queue is bound for it yet (its consumer declares it).
                OutboxMessage.objects.filter(pk=row.pk).update(
                    attempts=row.attempts + 1, last_error=reason[:2000]
                )
        self._database.answered()
        self.published += len(confirmed)
        record_published(row.routing_key for row in confirmed)
        if refused:
            logger.error(
                "broker refused %d outbox message(s) (retrying in 1s): %s",
                len(refused),
                next(iter(refused.values()))[1],
            )
            self.stop_event.wait(1.0)
        if failure is not None:
            raise failure
        return len(confirmed)

    def _publish(self, publisher: ConfirmingPublisher, row: OutboxMessage) -> None:
        message_id = str(row.message_id)
        with (
            bind(correlation_id=row.correlation_id, message_id=message_id),
            tracing.publish_span(
                exchange=row.exchange,
                routing_key=row.routing_key,
                message_id=message_id,
                correlation_id=row.correlation_id,
                stored_headers=row.headers,
            ) as trace_headers,
        ):
            publisher.publish(
                OutgoingMessage(
                    exchange=row.exchange,
                    routing_key=row.routing_key,
                    body=row.body.encode(),
                    properties=pika.BasicProperties(
                        content_type="application/json",
                        delivery_mode=pika.DeliveryMode.Persistent,
                        message_id=message_id,
                        correlation_id=row.correlation_id,
                        type=row.routing_key,
                        app_id=self.config.service,
                        user_id=self._user_id,
                        headers=trace_headers or None,  # W3C traceparent/tracestate
                    ),
                )
            )
            self._sent_rows.append(row)
            logger.debug("published %s %s", row.routing_key, message_id)


# The relay's two statements, written out: Django would compile them again for every batch.
_TABLE = OutboxMessage._meta.db_table


@functools.cache
def _claim_sql() -> str:
    """The oldest unsent rows (the partial index ``outbox_unsent``), locked for this relay."""
    lock = (
        " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    )
    return (
        "SELECT id, message_id, exchange, routing_key, body, correlation_id, attempts, headers "  # noqa: S608
        f"FROM {_TABLE} WHERE sent_at IS NULL ORDER BY id LIMIT %s{lock}"
    )


def _mark_sent(ids: list[int]) -> None:
    sent_at = OutboxMessage._meta.get_field("sent_at")
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_TABLE} SET sent_at = %s WHERE id IN ({', '.join(['%s'] * len(ids))})",  # noqa: S608
            [sent_at.get_db_prep_save(timezone.now(), connection), *ids],  # type: ignore[union-attr]
        )


def _close_quietly(waiter: _CommitWaiter | None, broker: BlockingConnection | None) -> None:
    for close in (waiter.close if waiter else None, broker.close if broker else None):
        if close is None:
            continue
        try:
            close()
        except Exception:  # already broken; nothing left to release
            logger.debug("ignored error while closing", exc_info=True)
