"""How long inventory takes to answer an order: the ``order.created`` handler, reserving every
line or rejecting the order, recorded when its transaction commits."""

from __future__ import annotations

from django.db import transaction
from prometheus_client import Histogram

RESERVATION_DURATION = Histogram(
    "inventory_reservation_duration_seconds",
    "Time to reserve (or reject) the stock of one order, by outcome: reserved, backordered or"
    " rejected.",
    ["outcome"],
)


def reservation_decided(outcome: str, seconds: float) -> None:
    transaction.on_commit(lambda: RESERVATION_DURATION.labels(outcome.lower()).observe(seconds))
