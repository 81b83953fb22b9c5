"""Keeping the outbox and the inbox bounded: a job of every service's worker deletes the sent
outbox rows and the inbox rows older than ``MESSAGING_RETENTION_DAYS``.

Why the default of 7 days is safe for the inbox (``docs/operations.md``, "Bounded tables"): an
inbox row must outlive every copy of its message the broker could still deliver. Copies of one
message are published seconds apart (the writer after its commit, the relay after its grace);
a retry comes back after at most the sum of ``MESSAGING_RETRY_DELAYS_MS`` (36 s by default); a
copy waiting in a queue behind a backlog is delivered once the consumers catch up, hours at worst.
The one path that can bring a copy back days later is an operator replaying a dead letter: the
replay refuses letters published longer ago than :func:`replay_max_age` (the retention less a
margin), so a message whose inbox row may be gone is never applied a second time.

Rows go in batches of ``MESSAGING_PRUNE_BATCH``, each its own short transaction that locks only
the rows it deletes (``FOR UPDATE SKIP LOCKED`` through the indexes ``outbox_sent`` and
``inbox_processed``): the relay, the writers and the consumers never wait behind the pruning.
Nor do they share the machine with it at full speed: while batches come back full (a backlog of
old rows: a first run, a lowered retention, weeks of history imported), the job rests
``REST_FACTOR`` times as long as its last batch took before the next one, so that catching up
takes at most a fifth of the time of its connection, and of the database's work it causes.
"""

from __future__ import annotations

import functools
import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from messaging.metrics import record_pruned
from messaging.models import InboxMessage, OutboxMessage
from messaging.worker import Job

logger = logging.getLogger("messaging.pruning")

DEFAULT_RETENTION_DAYS = 7.0
DEFAULT_BATCH = 1000
DEFAULT_EVERY_SECONDS = 300
# While catching up: rest this many times as long as the last full batch took, at most
# MAX_REST_SECONDS (the job is not counted healthy while it rests: the worker's heartbeat,
# read against a 30 s limit, must not go stale behind a slow batch).
REST_FACTOR = 4.0
MAX_REST_SECONDS = 5.0
# What a replayed dead letter may take to reach its consumer (a backlog, clocks apart).
REPLAY_MARGIN = timedelta(days=1)


def retention() -> timedelta:
    """How long sent outbox rows and inbox rows are kept (``MESSAGING_RETENTION_DAYS``)."""
    days = float(getattr(settings, "MESSAGING_RETENTION_DAYS", DEFAULT_RETENTION_DAYS))
    return timedelta(days=days)


def replay_max_age() -> timedelta:
    """The oldest dead letter (by its envelope's ``occurred_at``) a replay may send back.

    Every copy of a message was applied after it occurred, so while the message is younger than
    the retention its inbox row, if any, is still there. The margin (a day, at most half the
    retention) covers the time the replayed copy waits in the queue and clocks that disagree.
    """
    kept = retention()
    return kept - min(REPLAY_MARGIN, kept / 2)


# (table, column of its age, the condition of rows that may go)
_TABLES: dict[str, tuple[type[models.Model], str, str]] = {
    "outbox": (OutboxMessage, "sent_at", "sent_at IS NOT NULL AND sent_at < %s"),
    "inbox": (InboxMessage, "processed_at", "processed_at < %s"),
}


def prune_batch(table: str, older_than: datetime, batch: int) -> int:
    """Delete at most ``batch`` of ``table``'s rows older than ``older_than``, oldest first, in
    one short transaction; return how many."""
    model, column, _ = _TABLES[table]
    moment = model._meta.get_field(column).get_db_prep_value(older_than, connection)  # type: ignore[union-attr]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_prune_sql(table), [moment, batch])
        return cursor.rowcount


@functools.cache
def _prune_sql(table: str) -> str:
    """One batch: the oldest rows (through the index on their age), locked without waiting for
    rows another transaction holds, then deleted by primary key.

    On PostgreSQL the ids are gathered into an array first: with ``IN (subquery)`` the planner
    may join the subquery's rows against the whole table read from end to end.
    """
    model, column, condition = _TABLES[table]
    name = connection.ops.quote_name(model._meta.db_table)
    oldest = f"SELECT id FROM {name} WHERE {condition} ORDER BY {column} LIMIT %s"  # noqa: S608
    if connection.vendor == "postgresql":
        return f"DELETE FROM {name} WHERE id = ANY(ARRAY({oldest} FOR UPDATE SKIP LOCKED))"  # noqa: S608
    return f"DELETE FROM {name} WHERE id IN ({oldest})"  # noqa: S608


class PruneJob(Job):
    """Prunes the outbox's sent rows and the inbox every ``MESSAGING_PRUNE_EVERY_SECONDS``.

    Several workers may run it: each batch skips the rows another one holds. A database outage
    is waited out by the worker skeleton's back-off.
    """

    name = "prune"
    log = logger
    start_line = "pruning outbox and inbox rows older than {retention} every {poll_seconds:g}s"
    stop_line = "pruning stopped after deleting {deleted} rows"

    def __init__(self, *, interval: float | None = None, batch: int | None = None) -> None:
        super().__init__()
        every = getattr(settings, "MESSAGING_PRUNE_EVERY_SECONDS", DEFAULT_EVERY_SECONDS)
        self.poll_seconds = float(every if interval is None else interval)
        size = getattr(settings, "MESSAGING_PRUNE_BATCH", DEFAULT_BATCH)
        self.batch = int(size if batch is None else batch)
        self.retention = retention()
        self.deleted = 0

    def work(self) -> bool:
        """One batch of each table; True (again, after a rest) while either had a full batch."""
        self._database.before_work()
        started = time.monotonic()
        older_than = timezone.now() - self.retention
        more = False
        for table in _TABLES:
            done = prune_batch(table, older_than, self.batch)
            if done:
                record_pruned(table, done)
                self.deleted += done
            more = more or done >= self.batch
        self._database.answered()
        if more:
            self.sleep(min(REST_FACTOR * (time.monotonic() - started), MAX_REST_SECONDS))
        return more
