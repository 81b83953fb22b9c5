"""Writing events: one outbox row in the caller's transaction, published right after it commits.

Inside :func:`collecting` (a consumer's batch), the rows wait and are written together with one
``INSERT`` when the block ends, still in the transaction, in the order they were published.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterator, Sequence
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from messaging import after_commit, topology, versions
from messaging.config import MessagingConfig, get_config
from messaging.envelope import Envelope
from messaging.models import OutboxMessage
from messaging.schemas import SchemaViolation
from service_runtime import statements, tracing


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
    envelope, row = _event(config, event_type, data, correlation_id, causation)
    collector = _collector.get()
    if collector is None:
        insert([row])
    else:
        collector.add(row)
    if config.publish_after_commit:
        after_commit.register(row, config)
    return envelope


def event_row(
    event_type: str,
    data: dict[str, Any],
    *,
    correlation_id: str,
    causation: Envelope | None = None,
) -> OutboxMessage:
    """The outbox row of ``event_type``, validated as :func:`publish_event` does, not written.

    For a caller that writes the row in its own statement, together with the change it
    announces (one statement: one transaction, no ``BEGIN`` and ``COMMIT`` round trips), with
    :func:`insert_statement`'s text and values, then calls :func:`announce`.
    """
    return _event(get_config(), event_type, data, correlation_id, causation)[1]


def _event(
    config: MessagingConfig,
    event_type: str,
    data: dict[str, Any],
    correlation_id: str,
    causation: Envelope | None,
) -> tuple[Envelope, OutboxMessage]:
    if event_type not in topology.PUBLISHES.get(config.service, ()):
        # Its exchange would not carry it: the row could never be routed and would hold up
        # the relay, so refuse it here, in the transaction that would have caused it.
        raise SchemaViolation(
            f"service {config.service!r} does not publish {event_type!r} "
            "(see messaging.topology.PUBLISHES)"
        )
    # The newest payload, written in the version this service's consumers read.
    version, data = versions.for_publishing(event_type, data, config.event_versions)
    envelope, body = Envelope.encoded(
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
        body=body.decode(),
        correlation_id=envelope.correlation_id,
        created_at=timezone.now(),
        attempts=0,
        last_error="",
        headers=tracing.inject(),  # the current span's context: the publish span continues it
    )
    return envelope, row


def announce(rows: Sequence[OutboxMessage]) -> None:
    """Publish ``rows``, written by the caller's own statement, once that has committed: at
    once when it ran in autocommit (it committed as it ended), or after the commit of the
    caller's transaction if one is open. Unpublished, they are the relay's, as always."""
    config = get_config()
    if not config.publish_after_commit or not rows:
        return
    if connection.in_atomic_block:
        for row in rows:
            after_commit.register(row, config)
    else:
        after_commit.publish_committed(rows, config)


@functools.cache
def insert_statement(prefix: str, where: str = "true") -> str:
    """An ``INSERT`` of one outbox row whose values are the named parameters ``<prefix><column>``
    (:func:`insert_values`), to put in a caller's statement (a ``WITH`` clause); the row is
    written only when ``where`` (SQL) holds."""
    table = connection.ops.quote_name(OutboxMessage._meta.db_table)
    names = ", ".join(connection.ops.quote_name(column) for column in _COLUMNS)
    values = ", ".join(f"%({prefix}{column})s" for column in _COLUMNS)
    return f"INSERT INTO {table} ({names}) SELECT {values} WHERE {where}"


def insert_values(row: OutboxMessage, prefix: str) -> dict[str, Any]:
    """The values of :func:`insert_statement` for ``row``."""
    return {
        f"{prefix}{field.column}": field.get_db_prep_save(getattr(row, field.attname), connection)
        for field in _fields()
    }


@contextlib.contextmanager
def collecting() -> Iterator[None]:
    """Write the events published inside the block with one ``INSERT`` as it ends.

    The block is part of the current transaction (``atomic(savepoint=False)``): when it raises,
    that whole transaction rolls back, so no state change ever commits without its events.
    An event published in a savepoint that rolled back is left out, as it would have been
    deleted with it. Nested blocks write with the outermost one.
    """
    with transaction.atomic(savepoint=False):
        if _collector.get() is not None:
            yield
            return
        collector = _Collector()
        token = _collector.set(collector)
        try:
            yield
        finally:
            _collector.reset(token)
        collector.write()


class _Collector:
    """The rows published inside :func:`collecting`, each with the savepoints it was written in."""

    def __init__(self) -> None:
        self.rows: list[OutboxMessage] = []
        self.witnesses: list[_Witness] = []

    def add(self, row: OutboxMessage) -> None:
        # Django drops the commit hooks of a savepoint that rolls back: the witness of a row
        # still registered at the end says that every savepoint around it was kept.
        witness = _Witness()
        transaction.on_commit(witness)
        self.rows.append(row)
        self.witnesses.append(witness)

    def write(self) -> None:
        alive = {id(entry[1]) for entry in connection.run_on_commit}
        rows = [r for r, w in zip(self.rows, self.witnesses, strict=True) if id(w) in alive]
        if rows:
            insert(rows)


class _Witness:
    def __call__(self) -> None:
        """Nothing to do at commit: being still registered is the point."""


_collector: contextvars.ContextVar[_Collector | None] = contextvars.ContextVar(
    "outbox_collector", default=None
)


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


@functools.cache
def _fields() -> tuple[Any, ...]:
    return tuple(OutboxMessage._meta.get_field(name) for name in _COLUMNS)


def insert(rows: Sequence[OutboxMessage]) -> None:
    """Write ``rows`` in the caller's transaction: :func:`publish_event`'s rows, and those of
    :func:`event_row` where the change cannot be one statement with them (the ORM, on SQLite;
    :func:`announce` them after).

    ``bulk_create`` without Django compiling an ``INSERT`` on every event (it runs on every
    hot path): one statement, ids in the order of ``rows``.

    One text per number of rows, numbered once (:mod:`service_runtime.statements`: psycopg
    would parse a text of more than 50 parameters on every call); arrays (one text for any
    number, through ``unnest``) cost more to adapt than they save. A single row, what every
    transaction of one message or one request writes, is prepared: PostgreSQL would otherwise
    parse and plan that same text on every event (``reports/bench-changes.md``). Other counts
    are not, as each would hold a prepared statement of its own on every connection.
    """
    fields = _fields()
    values = [
        field.get_db_prep_save(getattr(row, field.attname), connection)
        for row in rows
        for field in fields
    ]
    statements.execute(_insert_sql(len(rows)), values, prepared=len(rows) == 1)


@functools.cache
def _insert_sql(count: int) -> str:
    table = connection.ops.quote_name(OutboxMessage._meta.db_table)
    names = ", ".join(connection.ops.quote_name(column) for column in _COLUMNS)
    row = f"({', '.join(['%s'] * len(_COLUMNS))})"
    return f"INSERT INTO {table} ({names}) VALUES {', '.join([row] * count)}"  # noqa: S608
