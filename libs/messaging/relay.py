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

import pika
from django.db import connection, transaction
from django.utils import timezone

from messaging import topology
from messaging.broker import CONNECTION_ERRORS
from messaging.config import MessagingConfig, get_config
from messaging.metrics import record_published
from messaging.models import OutboxMessage
from messaging.outbox import NOTIFY_CHANNEL
from messaging.publisher import ConfirmingPublisher, OutgoingMessage, Settled
from messaging.worker import Job
from service_runtime import tracing
from service_runtime.logging import bind

logger = logging.getLogger("messaging.relay")

SAFETY_POLL_SECONDS = 1.0


class OutboxRelay(Job):
    name = "relay"
    log = logger
    broker_name = "outbox-relay"
    notify_channel = NOTIFY_CHANNEL  # ``publish_event`` NOTIFYs in the writer's transaction
    start_line = "outbox relay starting"
    stop_line = "outbox relay stopped after {published} messages"
    config: MessagingConfig

    def __init__(self, config: MessagingConfig | None = None, *, batch_size: int = 200) -> None:
        super().__init__()
        self.config = config or get_config()
        self.batch_size = batch_size
        self.published = 0
        self._publisher: ConfirmingPublisher | None = None
        self._sent_rows: list[OutboxMessage] = []
        # RabbitMQ checks user_id against the connection's account, so consumers can trust it.
        self._user_id = pika.URLParameters(self.config.broker_url).credentials.username

    def on_connect(self) -> None:
        assert self.broker is not None
        channel = self.broker.channel()
        # Only its own exchange: the rest of the layout belongs to its owners (and to the
        # broker's definitions), and a service's broker account may not declare it.
        topology.declare_own_exchange(channel, self.config.names, self.config.service)
        self._publisher = ConfirmingPublisher(self.broker, channel)
        logger.info("outbox relay connected", extra={"service": self.config.service})

    def on_disconnect(self) -> None:
        self._publisher = None

    def work(self) -> bool:
        assert self._publisher is not None
        return self.relay_batch(self._publisher) >= self.batch_size

    def wait_seconds(self) -> float:
        return SAFETY_POLL_SECONDS

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
