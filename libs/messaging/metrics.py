"""What the consumers and relays count, and the outbox backlog read at scrape time.

The workers are processes of their own: with ``PROMETHEUS_MULTIPROC_DIR`` set to the service's
directory (as ``make up`` and the containers do) their counts appear in the web server's
``/metrics`` (``service_runtime.metrics``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from django.db import DatabaseError
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from messaging.models import OutboxMessage

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
