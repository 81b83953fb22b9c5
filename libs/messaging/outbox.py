"""Writing events: one outbox row in the caller's transaction, and a wake-up for the relay."""

from __future__ import annotations

import functools
from typing import Any

from django.db import connection
from django.utils import timezone

from messaging import notify, topology
from messaging.config import get_config
from messaging.envelope import Envelope
from messaging.models import OutboxMessage
from messaging.schemas import SchemaViolation
from service_runtime import tracing

NOTIFY_CHANNEL = "messaging_outbox"


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

    The payload is validated against its schema now, so a bad event fails the transaction that
    would have caused it rather than reaching a consumer.
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
    envelope = Envelope.new(
        event_type,
        data,
        source=config.service,
        correlation_id=correlation_id,
        causation_id=causation.id if causation else None,
    )
    _insert_row(
        message_id=envelope.id,
        exchange=config.names.exchange(config.service),
        routing_key=event_type,
        body=envelope.to_json(),
        correlation_id=envelope.correlation_id,
        created_at=timezone.now(),
        attempts=0,
        last_error="",
        headers=tracing.inject(),  # the current span's context: the relay passes it on
    )
    # Delivered to the relay's LISTEN at commit, and dropped on rollback; one per transaction
    # is enough, the relay then reads every unsent row.
    notify.notify_once(NOTIFY_CHANNEL)
    return envelope


def _insert_row(**values: Any) -> None:
    """``OutboxMessage.objects.create(**values)`` without building a model and compiling an
    ``INSERT`` on every event (it runs once per event on every hot path)."""
    fields = [OutboxMessage._meta.get_field(name) for name in values]
    with connection.cursor() as cursor:
        cursor.execute(
            _insert_sql(tuple(values)),
            [
                field.get_db_prep_save(value, connection)  # type: ignore[union-attr]
                for field, value in zip(fields, values.values(), strict=True)
            ],
        )


@functools.cache
def _insert_sql(columns: tuple[str, ...]) -> str:
    table = connection.ops.quote_name(OutboxMessage._meta.db_table)
    names = ", ".join(connection.ops.quote_name(column) for column in columns)
    return f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(columns))})"  # noqa: S608
