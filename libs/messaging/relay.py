"""The outbox relay: the safety net that publishes rows their writer left unsent.

A row's writer publishes it right after its commit (``messaging.after_commit``). The relay
sends only rows still unsent ``MESSAGING_RELAY_GRACE_SECONDS`` after they were written: their
writer died before publishing or before marking them, the broker was unreachable, refused them
(no queue bound) or did not confirm in time. It looks for them every grace period (polling: a
wake-up per commit would cost every commit a ``NOTIFY`` for rows that are almost never there).

A batch of rows goes out with its confirms in flight (``messaging.publisher``): one wait for
the broker per batch, not per row, then one ``UPDATE`` marks the confirmed rows sent. Rows are
claimed with ``SELECT … FOR UPDATE SKIP LOCKED`` (through the partial index on unsent rows) so
several relays, and the writers marking their own rows, never wait for each other. A row is
marked sent only after the broker confirmed it; a row published but not yet marked when its
sender dies is published again, and the consumers' inbox absorbs the duplicate.
"""

from __future__ import annotations

import functools
import logging
import threading
from datetime import datetime, timedelta
from typing import Any

import psycopg
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.utils import timezone
from pika.adapters.blocking_connection import BlockingConnection

from messaging import sending, topology
from messaging.broker import CONNECTION_ERRORS, backoff_delays, close_quietly, connect
from messaging.config import MessagingConfig, get_config
from messaging.metrics import record_published
from messaging.models import OutboxMessage
from messaging.publisher import ConfirmingPublisher, Settled
from messaging.worker import DatabaseCheck, Heartbeat

logger = logging.getLogger("messaging.relay")

MIN_POLL_SECONDS = 0.05  # with no grace at all (tests), still not a busy loop

# Errors after which the relay drops both connections and opens new ones.
_RECONNECT_ERRORS: tuple[type[BaseException], ...] = (
    *CONNECTION_ERRORS,
    DatabaseError,
    psycopg.Error,
)


class OutboxRelay:
    def __init__(self, config: MessagingConfig | None = None, *, batch_size: int = 200) -> None:
        self.config = config or get_config()
        self.batch_size = batch_size
        self.stop_event = threading.Event()
        self.published = 0
        self.heartbeat = Heartbeat(None)  # run_relay gives it a file: ready while relaying
        self._database = DatabaseCheck()
        self._sent_rows: list[OutboxMessage] = []
        self._user_id = sending.broker_user(self.config.broker_url)

    @property
    def poll_seconds(self) -> float:
        return max(self.config.relay_grace_seconds, MIN_POLL_SECONDS)

    def run_forever(self) -> None:
        """Relay until stopped, reconnecting to the broker and the database as needed."""
        delays = backoff_delays()
        while not self.stop_event.is_set():
            broker: BlockingConnection | None = None
            try:
                close_old_connections()
                broker = connect(self.config, name="outbox-relay")
                channel = broker.channel()
                # Only its own exchange: the rest of the layout belongs to its owners (and to the
                # broker's definitions), and a service's broker account may not declare it.
                topology.declare_own_exchange(channel, self.config.names, self.config.service)
                publisher = ConfirmingPublisher(broker, channel)
                logger.info("outbox relay connected", extra={"service": self.config.service})
                delays = backoff_delays()
                self._relay_until_stopped(broker, publisher)
            except _RECONNECT_ERRORS as exc:
                self._database.forget()
                delay = next(delays)
                logger.warning("outbox relay lost a connection (%s); retrying in %.1fs", exc, delay)
                self.stop_event.wait(delay)
            finally:
                close_quietly(broker)
                connection.close()

    def _relay_until_stopped(
        self, broker: BlockingConnection, publisher: ConfirmingPublisher
    ) -> None:
        while not self.stop_event.is_set():
            published = self.relay_batch(publisher)
            self.heartbeat.beat()
            if published < self.batch_size:
                broker.process_data_events(time_limit=0)  # keeps heartbeats flowing
                self.stop_event.wait(self.poll_seconds)

    def relay_batch(self, publisher: ConfirmingPublisher) -> int:
        """Publish one batch of rows left unsent past the grace; return how many the broker
        confirmed.

        Every row of the batch goes out before the relay waits, once, for all the confirms
        (``ConfirmingPublisher``); the confirmed rows are then marked sent in one statement.
        """
        self._database.before_work()
        failure: BaseException | None = None
        settled = Settled()
        cutoff = timezone.now() - timedelta(seconds=self.config.relay_grace_seconds)
        with transaction.atomic():
            rows = list(
                OutboxMessage.objects.raw(_claim_sql(), [_created_at(cutoff), self.batch_size])
            )
            if not rows:
                self._database.answered()
                return 0
            self._sent_rows = []  # the row of each message published, in order
            try:
                for row in rows:
                    self._publish(publisher, row)
                settled = publisher.wait()
            except CONNECTION_ERRORS as exc:
                failure = exc  # nothing is marked: published rows go again, the inbox absorbs
            outcome = sending.settle(self._sent_rows, settled)
            sending.record(outcome)
        self._database.answered()
        self.published += len(outcome.confirmed)
        record_published(row.routing_key for row in outcome.confirmed)
        sending.log_refused(outcome, what="outbox message(s) (retrying in 1s)")
        if outcome.refused:
            self.stop_event.wait(1.0)
        if failure is not None:
            raise failure
        return len(outcome.confirmed)

    def _publish(self, publisher: ConfirmingPublisher, row: OutboxMessage) -> None:
        sending.send(publisher, row, app_id=self.config.service, user_id=self._user_id)
        self._sent_rows.append(row)


# The relay's claim, written out: Django would compile it again for every batch.
_TABLE = OutboxMessage._meta.db_table


@functools.cache
def _claim_sql() -> str:
    """The oldest rows unsent since before the cutoff (the partial index ``outbox_unsent``),
    locked for this relay."""
    lock = (
        " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    )
    return (
        "SELECT id, message_id, exchange, routing_key, body, correlation_id, attempts, headers "  # noqa: S608
        f"FROM {_TABLE} WHERE sent_at IS NULL AND created_at <= %s ORDER BY id LIMIT %s{lock}"
    )


def _created_at(moment: datetime) -> Any:
    return OutboxMessage._meta.get_field("created_at").get_db_prep_value(moment, connection)  # type: ignore[union-attr]
