"""Writing events: one outbox row in the caller's transaction, published right after it commits."""

from __future__ import annotations

import functools
from typing import Any

from django.db import connection
from django.utils import timezone

from messaging import after_commit, topology, versions
from messaging.config import get_config
from messaging.envelope import Envelope
from messaging.models import OutboxMessage
from messaging.schemas import SchemaViolation
from service_runtime import tracing


class OutsideTransaction(RuntimeError):
    """publish_event must share the transaction of the state change it announces."""


def publish_event(
    event_type: str,
    data: dict[str, Any],
    *,
    correlation_id: str,
    causation: Envelope | None = None,
) -> Envelope:
    """Record ``event_type`` for publication when, and only if, the current transaction commits.

    ``data`` is the payload of the newest version of ``event_type``; it is published in the
    version the service's consumers read (``messaging.versions``). The payload is validated
    against that version's schema now, so a bad event fails the transaction that would have
    caused it rather than reaching a consumer.
    """
    if not connection.in_atomic_block:
        raise OutsideTransaction(f"publish_event({event_type!r}) called outside transaction.atomic")
    config = get_config()
    if event_type not in topology.PUBLISHES.get(config.service, ()):
        # Its exchange would not carry it: the row could never be routed and would hold up
        # the relay, so refuse it here, in the transaction that would have caused it.
        raise SchemaViolation(
            f"service {config.service!r} does not publish {event_type!r} "
            "(see messaging.topology.PUBLISHES)"
        )
    # The newest payload, written in the version this service's consumers read.
    version, data = versions.for_publishing(event_type, data, config.event_versions)
    envelope = Envelope.new(
        event_type,
        data,
        source=config.service,
        correlation_id=correlation_id,
        causation_id=causation.id if causation else None,
        version=version,
    )
    row = OutboxMessage(
        message_id=envelope.id,
        exchange=config.names.exchange(config.service),
        routing_key=event_type,
        body=envelope.to_json(),
        correlation_id=envelope.correlation_id,
        created_at=timezone.now(),
        attempts=0,
        last_error="",
        headers=tracing.inject(),  # the current span's context: the publish span continues it
    )
    _insert_row(row)
    if config.publish_after_commit:
        after_commit.register(row, config)
    return envelope


_COLUMNS = (
    "message_id",
    "exchange",
    "routing_key",
    "body",
    "correlation_id",
    "created_at",
    "attempts",
    "last_error",
    "headers",
)


def _insert_row(row: OutboxMessage) -> None:
    """``row.save()`` without Django compiling an ``INSERT`` on every event (it runs once per
    event on every hot path)."""
    fields = [OutboxMessage._meta.get_field(name) for name in _COLUMNS]
    with connection.cursor() as cursor:
        cursor.execute(
            _insert_sql(),
            [
                field.get_db_prep_save(getattr(row, field.attname), connection)  # type: ignore[union-attr]
                for field in fields
            ],
        )


@functools.cache
def _insert_sql() -> str:
    table = connection.ops.quote_name(OutboxMessage._meta.db_table)
    names = ", ".join(connection.ops.quote_name(column) for column in _COLUMNS)
    return f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(_COLUMNS))})"  # noqa: S608
