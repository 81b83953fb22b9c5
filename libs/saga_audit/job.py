"""The audit, periodically: a job of the orders worker (``WORKER_JOBS``), every
``SAGA_AUDIT_EVERY_SECONDS``, with the staff account ``SAGA_AUDIT_USERNAME`` /
``SAGA_AUDIT_PASSWORD``; without an account it does nothing (``make up`` needs none).

It reads the other services through their staff APIs like the command, never their databases,
and exports what it found: ``saga_audit_drift{kind}`` (the last run's count of each kind),
``saga_audit_last_success_timestamp_seconds`` and ``saga_audit_runs_total{outcome}``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally

from django.conf import settings
from prometheus_client import Counter, Gauge

from messaging.worker import Job
from saga_audit.client import AuditUnavailable
from saga_audit.compare import KINDS
from saga_audit.run import Result, audit_as

logger = logging.getLogger("saga_audit")

DRIFT = Gauge(
    "saga_audit_drift",
    "Drift the last cross-service audit found between orders and reservations, by kind.",
    ["kind"],
    multiprocess_mode="livemax",
)
LAST_SUCCESS = Gauge(
    "saga_audit_last_success_timestamp_seconds",
    "When the cross-service audit last compared both sides (whatever it found).",
    multiprocess_mode="livemax",
)
RUNS = Counter(
    "saga_audit_runs_total",
    "Cross-service audits, by outcome: clean, drift, or failed (a service could not be read).",
    ["outcome"],
)


def record(result: Result) -> None:
    found = Tally(drift.kind for drift in result.drift)
    for kind in KINDS:
        DRIFT.labels(kind).set(found[kind])
    LAST_SUCCESS.set(time.time())
    RUNS.labels("drift" if result.drift else "clean").inc()


class SagaAuditJob(Job):
    name = "audit"
    log = logger
    start_line = "cross-service audit every {poll_seconds:g}s ({state})"
    stop_line = "cross-service audit stopped after {runs} runs"

    def __init__(self, *, interval: float | None = None) -> None:
        super().__init__()
        every = settings.SAGA_AUDIT_EVERY_SECONDS if interval is None else interval
        self.poll_seconds = float(every)
        self.username = settings.SAGA_AUDIT_USERNAME
        self.password = settings.SAGA_AUDIT_PASSWORD
        self.state = "on" if self.username else "off: no SAGA_AUDIT_USERNAME"
        self.runs = 0

    def work(self) -> bool:
        if not self.username:
            return False  # off: it only waits, healthy
        try:
            result = self.audit_once()
        except AuditUnavailable as exc:
            RUNS.labels("failed").inc()
            logger.warning("cross-service audit not possible: %s", exc)
            return False
        except Exception:  # an answer it did not expect: the worker's other jobs carry on
            RUNS.labels("failed").inc()
            logger.exception("cross-service audit failed")
            return False
        self.runs += 1
        for drift in result.drift:
            logger.error("audit drift: %s", drift)
        logger.info(
            "cross-service audit: %d drift(s) in %d orders and %d reservations",
            len(result.drift),
            result.orders,
            result.reservations,
        )
        return False

    def _alive(self) -> None:
        """A service answered: the job is working, its heartbeat stays fresh."""
        self.healthy_at = time.monotonic()

    def audit_once(self) -> Result:
        result = audit_as(
            orders_url=settings.SAGA_AUDIT_ORDERS_URL,
            inventory_url=settings.SAGA_AUDIT_INVENTORY_URL,
            users_url=settings.SAGA_AUDIT_USERS_URL,
            username=self.username,
            password=self.password,
            grace_seconds=settings.SAGA_AUDIT_GRACE_SECONDS,
            shipped_days=settings.SAGA_AUDIT_SHIPPED_DAYS,
            answered=self._alive,
        )
        record(result)
        return result
