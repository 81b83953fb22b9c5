"""Sending outbox rows, the one way both their writer (right after its commit) and the relay do:
each row as a persistent, ``mandatory`` message with publisher confirms, then one ``UPDATE``
for the confirmed rows and the refusal recorded on each refused one.

Marks and refusals skip rows another transaction holds (``SKIP LOCKED``): a writer never waits
for the relay that claimed its row after the grace period, nor the relay for a writer; the
one that holds the row marks it, and a copy published twice is absorbed by the inbox.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pika
from django.db import connection
from django.utils import timezone

from messaging.models import OutboxMessage
from messaging.publisher import OutgoingMessage, Publisher, Settled
from service_runtime import statements, tracing
from service_runtime.logging import bind

logger = logging.getLogger("messaging.sending")

_TABLE = OutboxMessage._meta.db_table


@functools.lru_cache(maxsize=8)
def broker_user(broker_url: str) -> str:
    """The ``user_id`` to publish with: RabbitMQ checks it against the connection's account, so
    consumers can trust it. Remembered by URL: pika takes ~60 us to parse one, and every
    transaction that publishes after its commit asks."""
    return str(pika.URLParameters(broker_url).credentials.username)


def send(publisher: Publisher, row: OutboxMessage, *, app_id: str, user_id: str) -> None:
    """Publish ``row`` (its confirm is collected by ``publisher.wait``) in a ``publish`` span
    that continues the trace the row was written in."""
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
                    app_id=app_id,
                    user_id=user_id,
                    headers=trace_headers or None,  # W3C traceparent/tracestate
                ),
            )
        )
        logger.debug("published %s %s", row.routing_key, message_id)


@dataclass
class Outcome:
    """What the broker did with a batch of rows, one entry per row however often it went out."""

    confirmed: list[OutboxMessage] = field(default_factory=list)
    refused: list[tuple[OutboxMessage, str]] = field(default_factory=list)  # (row, why)


def settle(sent: Sequence[OutboxMessage], settled: Settled) -> Outcome:
    """The rows confirmed, and those refused (a copy refused beside a copy taken is confirmed).

    ``sent`` holds the row of each message published, in order, copies included.
    """
    confirmed = {str(sent[i].message_id): sent[i] for i in settled.confirmed}
    refused: dict[str, tuple[OutboxMessage, str]] = {}
    for index, why in settled.refused.items():
        key = str(sent[index].message_id)
        if key not in confirmed:
            refused.setdefault(key, (sent[index], why))
    return Outcome(list(confirmed.values()), list(refused.values()))


def record(outcome: Outcome) -> None:
    """Mark the confirmed rows sent and count a failed attempt on each refused one (once the
    mark commits, the confirmed rows count as published).

    In the caller's transaction if it has one (the relay's, which claimed the rows); otherwise
    each statement is its own transaction, so marking a writer's events after its commit takes
    one round trip, not four (``BEGIN``, ``SET LOCAL``, ``UPDATE``, ``COMMIT``).

    The marks need not wait for the WAL flush: a mark lost in a crash only publishes the row
    again, and the consumers' inbox absorbs the duplicate. The marking statement itself turns
    ``synchronous_commit`` off for the transaction it runs in (``set_config(..., true)``, which
    also holds for a statement's own transaction, where ``SET LOCAL`` would not).
    """
    if outcome.confirmed:
        sent_at = OutboxMessage._meta.get_field("sent_at")
        statements.execute(
            _mark(len(outcome.confirmed)),
            [
                sent_at.get_db_prep_save(timezone.now(), connection),  # type: ignore[union-attr]
                *_ids(row.message_id for row in outcome.confirmed),
            ],
        )
    if not outcome.refused:
        return
    with connection.cursor() as cursor:
        for row, reason in outcome.refused:
            # Kept unsent: no queue is bound for it yet (its consumer declares it).
            cursor.execute(
                f"UPDATE {_TABLE} SET attempts = attempts + 1, last_error = %s WHERE {_held(1)}",  # noqa: S608
                [reason[:2000], *_ids([row.message_id])],
            )


def carried_mark(at: str = "%s", ids: str = "%s") -> str:
    """A ``WITH`` item by which another statement marks sent the rows of events confirmed
    earlier: those whose message ids are in the array parameter ``ids`` (none when it is
    empty), at the time parameter ``at`` (placeholders, in this order when positional).
    PostgreSQL only: SQLite has no writing ``WITH``."""
    return (
        f"marked AS (UPDATE {_TABLE} SET sent_at = {at} WHERE id IN ("  # noqa: S608
        f"SELECT id FROM {_TABLE} WHERE message_id = ANY({ids}::uuid[]) "
        "FOR UPDATE SKIP LOCKED))"
    )


def mark_values(message_ids: Iterable[Any]) -> tuple[Any, list[Any]]:
    """The parameters of :func:`carried_mark`: the time to mark the rows sent at, their ids."""
    sent_at = OutboxMessage._meta.get_field("sent_at")
    at = sent_at.get_db_prep_save(timezone.now(), connection)  # type: ignore[union-attr]
    return at, _ids(message_ids)


# Joined to the marking UPDATE: evaluated once, before the rows are updated.
UNFLUSHED_COMMIT = "(SELECT set_config('synchronous_commit', 'off', true)) AS unflushed"


@functools.cache
def _mark(count: int) -> str:
    """The statement marking ``count`` rows sent (``synchronous_commit`` off on PostgreSQL)."""
    unflushed = f" FROM {UNFLUSHED_COMMIT}" if connection.vendor == "postgresql" else ""
    return f"UPDATE {_TABLE} SET sent_at = %s{unflushed} WHERE {_held(count)}"  # noqa: S608


def _ids(message_ids: Iterable[Any]) -> list[Any]:
    field_ = OutboxMessage._meta.get_field("message_id")
    return [field_.get_db_prep_value(value, connection) for value in message_ids]  # type: ignore[union-attr]


@functools.cache
def _held(count: int) -> str:
    """The condition selecting the rows of ``count`` message ids that no other transaction
    holds (on PostgreSQL; SQLite has one writer at a time anyway)."""
    ids = ", ".join(["%s"] * count)
    if not connection.features.has_select_for_update_skip_locked:
        return f"message_id IN ({ids})"
    return (
        f"id IN (SELECT id FROM {_TABLE} WHERE message_id IN ({ids}) "  # noqa: S608
        "FOR UPDATE SKIP LOCKED)"
    )


def log_refused(outcome: Outcome, *, what: str) -> None:
    """One line for the refused rows of a batch (their rows keep the reason)."""
    if outcome.refused:
        logger.error("broker refused %d %s: %s", len(outcome.refused), what, outcome.refused[0][1])
