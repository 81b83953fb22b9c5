"""What the orders service counts: orders placed, the outcomes they reach, and how long the
customer waits for the reservation (placed → CONFIRMED or REJECTED).

Recorded when the transaction that made the change commits; the consumer and the deadline
worker write to the service's multi-process directory, so the web server's ``/metrics`` shows
their transitions too.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone
from prometheus_client import Counter, Histogram

from orders.models import OrderStatus

ORDERS_PLACED = Counter("orders_placed_total", "Orders accepted as PENDING.")
ORDER_OUTCOMES = Counter(
    "orders_outcomes_total",
    "Orders that reached a status: backordered, confirmed, rejected, cancelled or shipped.",
    ["outcome"],
)
RESERVATION_LATENCY = Histogram(
    "orders_reservation_latency_seconds",
    "From placing an order to it becoming CONFIRMED or REJECTED, by outcome.",
    ["outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)


def order_placed() -> None:
    transaction.on_commit(ORDERS_PLACED.inc)


def order_moved(*, from_status: str, to_status: str, placed_at: datetime) -> None:
    outcome = to_status.lower()

    def record() -> None:
        ORDER_OUTCOMES.labels(outcome).inc()
        if from_status == OrderStatus.PENDING and to_status in (
            OrderStatus.CONFIRMED,
            OrderStatus.REJECTED,
        ):
            RESERVATION_LATENCY.labels(outcome).observe(
                max((timezone.now() - placed_at).total_seconds(), 0.0)
            )

    transaction.on_commit(record)
