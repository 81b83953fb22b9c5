"""The clock of the saga: a worker that cancels PENDING orders past their deadline."""

from __future__ import annotations

import logging
import threading
import time

from django.db import DatabaseError, close_old_connections, connection

from messaging.broker import backoff_delays
from messaging.worker import BEAT_EVERY_SECONDS, Heartbeat
from orders.services import orders_expire_pending

logger = logging.getLogger("orders.deadlines")


class OrderDeadlineWorker:
    """Runs :func:`orders_expire_pending` every ``interval`` seconds until ``stop_event`` is set.

    A database outage is logged and waited out with back-off; the worker never exits on it.
    """

    def __init__(self, *, interval: float) -> None:
        self.interval = interval
        self.stop_event = threading.Event()
        self.expired = 0
        self.heartbeat = Heartbeat(None)  # run_order_deadlines gives it a file

    def run_once(self) -> int:
        close_old_connections()
        expired = orders_expire_pending()
        if expired:
            logger.info("cancelled %d PENDING orders past their deadline", expired)
        self.expired += expired
        return expired

    def run_forever(self) -> None:
        delays = backoff_delays()
        while not self.stop_event.is_set():
            try:
                self.run_once()
            except DatabaseError as exc:
                delay = next(delays)
                logger.warning("database unavailable (%s); retrying in %.1fs", exc, delay)
                _close_quietly()
                self.stop_event.wait(delay)
                continue
            delays = backoff_delays()
            self._wait_beating(self.interval)

    def _wait_beating(self, seconds: float) -> None:
        """Wait for the next scan, beating meanwhile: the last one reached the database."""
        deadline = time.monotonic() + seconds
        while not self.stop_event.is_set():
            self.heartbeat.beat()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.stop_event.wait(min(remaining, BEAT_EVERY_SECONDS))


def _close_quietly() -> None:
    try:
        connection.close()
    except DatabaseError:  # the connection is already broken; a new one opens next time
        logger.debug("ignored error while closing the database connection", exc_info=True)
