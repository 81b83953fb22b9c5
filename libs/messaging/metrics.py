"""What the consumers, relays and pruning count, and the outbox backlog and the sizes of the
outbox and inbox tables read at scrape time.

The workers are processes of their own: with ``PROMETHEUS_MULTIPROC_DIR`` set to the service's
directory (as ``make up`` and the containers do) their counts appear in the web server's
``/metrics`` (``service_runtime.metrics``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime

from django.db import DatabaseError, connection
from django.db.models import Count, Min, Model
from django.utils import timezone
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from messaging.models import InboxMessage, OutboxMessage

logger = logging.getLogger("messaging.metrics")

MESSAGES_CONSUMED = Counter(
    "messaging_messages_consumed_total",
    "Messages applied (or found already applied) and acknowledged, by queue.",
    ["queue"],
)
MESSAGES_RETRIED = Counter(
    "messaging_messages_retried_total",
    "Messages whose handler failed, sent to a retry queue, by queue.",
    ["queue"],
)
MESSAGES_DEAD_LETTERED = Counter(
    "messaging_messages_dead_lettered_total",
    "Messages sent to the dead-letter queue (malformed, rejected, or out of retries), by queue.",
    ["queue"],
)
HANDLER_DURATION = Histogram(
    "messaging_handler_duration_seconds",
    "Time from a delivery to its outcome (the handler and its transaction), by queue.",
    ["queue"],
)
MESSAGES_PUBLISHED = Counter(
    "messaging_messages_published_total",
    "Outbox messages published (by their writer or the relay) and confirmed, by event type.",
    ["type"],
)

_OUTCOME_COUNTERS = {
    "ack": MESSAGES_CONSUMED,
    "retry": MESSAGES_RETRIED,
    "dead": MESSAGES_DEAD_LETTERED,
}


def record_delivery(queue: str, action: str, seconds: float) -> None:
    """One delivery of ``queue`` settled with ``action`` ("ack", "retry" or "dead")."""
    _OUTCOME_COUNTERS[action].labels(queue).inc()
    HANDLER_DURATION.labels(queue).observe(seconds)


def record_published(event_types: Iterable[str]) -> None:
    for event_type in event_types:
        MESSAGES_PUBLISHED.labels(event_type).inc()


class OutboxCollector:
    """The outbox backlog, read from the database at each scrape: how many rows are unsent and
    how old the oldest is (a growing age means the relay is down or the broker refuses)."""

    def collect(self) -> Iterator[Metric]:
        try:
            backlog = OutboxMessage.objects.filter(sent_at__isnull=True).aggregate(
                count=Count("id"), oldest=Min("created_at")
            )
        except DatabaseError as exc:  # /metrics still answers; the gap in the series tells
            logger.warning("outbox backlog unavailable: %s", exc)
            return
        oldest = backlog["oldest"]
        age = (timezone.now() - oldest).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "messaging_outbox_unsent_messages",
            "Outbox rows not yet published (confirmed by the broker).",
            value=backlog["count"],
        )
        yield GaugeMetricFamily(
            "messaging_outbox_oldest_unsent_age_seconds",
            "Age of the oldest unsent outbox row; 0 when there is none.",
            value=max(age, 0.0),
        )


ROWS_PRUNED = Counter(
    "messaging_rows_pruned_total",
    "Sent outbox rows and inbox rows deleted after the retention period, by table.",
    ["table"],
)


def record_pruned(table: str, rows: int) -> None:
    ROWS_PRUNED.labels(table).inc(rows)


COUNT_BOUND = 100_000  # a table never analyzed is counted up to this many rows


class TablesCollector:
    """The size of the outbox and the inbox, read at each scrape without reading them through:
    PostgreSQL's estimate of their rows (``pg_class.reltuples``, kept by autovacuum's analyze;
    a table never analyzed yet is counted up to ``COUNT_BOUND`` rows), and the age of their
    oldest row, from the first entry of an index. Pruning keeps the age near the retention."""

    def collect(self) -> Iterator[Metric]:
        rows = GaugeMetricFamily(
            "messaging_table_rows",
            "Rows of the outbox and the inbox tables (PostgreSQL's estimate), by table.",
            labels=["table"],
        )
        ages = GaugeMetricFamily(
            "messaging_table_oldest_row_age_seconds",
            "Age of the oldest row of the outbox (written) and the inbox (processed), by table; "
            "0 when the table is empty.",
            labels=["table"],
        )
        try:
            for table, (model, oldest_sql) in _SIZED_TABLES.items():
                rows.add_metric([table], _row_estimate(model))
                ages.add_metric([table], _oldest_age(oldest_sql(model._meta.db_table)))
        except DatabaseError as exc:  # /metrics still answers; the gap in the series tells
            logger.warning("table sizes unavailable: %s", exc)
            return
        yield rows
        yield ages


def _row_estimate(model: type[Model]) -> int:
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table]
            )
            row = cursor.fetchone()
            if row is not None and row[0] >= 0:
                return int(row[0])
        cursor.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {connection.ops.quote_name(table)} LIMIT %s) s",  # noqa: S608
            [COUNT_BOUND],
        )
        counted = cursor.fetchone()
        return int(counted[0]) if counted else 0


def _oldest_age(sql: str) -> float:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        row = cursor.fetchone()
    if row is None or row[0] is None:
        return 0.0
    oldest = row[0]
    if isinstance(oldest, str):  # SQLite hands back text
        oldest = datetime.fromisoformat(oldest)
    if timezone.is_naive(oldest):
        oldest = timezone.make_aware(oldest, UTC)
    return max((timezone.now() - oldest).total_seconds(), 0.0)


_SIZED_TABLES: dict[str, tuple[type[Model], Callable[[str], str]]] = {
    # ids grow with time: the primary key's first entry is the oldest row written
    "outbox": (OutboxMessage, lambda t: f"SELECT created_at FROM {t} ORDER BY id LIMIT 1"),  # noqa: S608
    "inbox": (
        InboxMessage,
        lambda t: f"SELECT processed_at FROM {t} ORDER BY processed_at LIMIT 1",  # noqa: S608
    ),
}
