"""The clock of the saga: a job of the orders worker that cancels PENDING orders past their
deadline, and BACKORDERED ones past ``ORDERS_BACKORDER_DEADLINE_SECONDS`` when it is set,
every ``ORDER_DEADLINE_SCAN_SECONDS``."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings

from messaging.worker import Job
from orders.services import orders_expire_backordered, orders_expire_pending

logger = logging.getLogger("orders.deadlines")


class OrderDeadlineJob(Job):
    """Runs :func:`orders_expire_pending` and :func:`orders_expire_backordered` every
    ``interval`` seconds; several workers may (its
    claim skips the orders another one holds). A database outage is waited out with back-off."""

    name = "deadlines"
    log = logger
    start_line = "order deadlines: scanning every {poll_seconds:g}s"
    stop_line = "order deadlines stopped after cancelling {expired} orders"

    def __init__(self, *, interval: float | None = None) -> None:
        super().__init__()
        self.poll_seconds = settings.ORDER_DEADLINE_SCAN_SECONDS if interval is None else interval
        self.expired = 0

    def work(self) -> bool:
        self._database.before_work()
        expired = orders_expire_pending()
        backordered = orders_expire_backordered(older_than=backorder_deadline())
        self._database.answered()
        if expired:
            logger.info("cancelled %d PENDING orders past their deadline", expired)
        if backordered:
            logger.info("cancelled %d BACKORDERED orders past the backorder deadline", backordered)
        self.expired += expired + backordered
        return False


def backorder_deadline() -> timedelta | None:
    """How long a BACKORDERED order may wait (``ORDERS_BACKORDER_DEADLINE_SECONDS``); None:
    as long as it takes."""
    seconds = settings.ORDERS_BACKORDER_DEADLINE_SECONDS
    return timedelta(seconds=seconds) if seconds and seconds > 0 else None
