"""The broker's readiness check, listed in ``settings.HEALTH_READINESS_CHECKS`` as ``broker``.

An AMQP connection with the service's own account opens and closes. The answer is kept for
``HEALTH_BROKER_CACHE_SECONDS`` so that a storm of probes opens few connections.
"""

from __future__ import annotations

import threading
import time

from django.conf import settings

from messaging.broker import broker_problem
from service_runtime.health import CheckResult

BROKER_TIMEOUT_SECONDS = 2.0


class BrokerCheck:
    """Connects at most once per ``ttl`` seconds per broker URL; callers in between get the
    last answer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[str, tuple[float, str | None]] = {}

    def __call__(self, url: str, ttl: float) -> CheckResult:
        with self._lock:  # concurrent probes wait for one connection attempt, not one each
            checked_at, problem = self._answers.get(url, (float("-inf"), None))
            if time.monotonic() - checked_at >= ttl:
                problem = broker_problem(url, timeout=BROKER_TIMEOUT_SECONDS)
                self._answers[url] = (time.monotonic(), problem)
        return CheckResult(problem is None, problem)

    def forget(self) -> None:
        with self._lock:
            self._answers.clear()


broker_check = BrokerCheck()


def check_broker() -> CheckResult:
    return broker_check(
        settings.MESSAGING_BROKER_URL, float(getattr(settings, "HEALTH_BROKER_CACHE_SECONDS", 3))
    )
