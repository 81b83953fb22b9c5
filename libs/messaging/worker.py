"""Running a long-lived worker (consumer, relay, scheduler) until SIGTERM or SIGINT, and its
heartbeat: how a worker reports that it is ready.

A worker that is connected and working touches its heartbeat file every few seconds; one that
has lost its broker or database is retrying with back-off and does not. So a fresh file means
ready, and a stale or missing one means not: ``manage.py worker_health --max-age 30`` (and the
containers' ``probe heartbeat``) read it. The file is ``WORKER_HEARTBEAT_FILE`` when set (one
worker per container), else ``<VAR_DIR>/heartbeats/<service>.<command>``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType

from django.conf import settings
from django.db import close_old_connections

from service_runtime.settings import VAR_DIR

HEARTBEAT_ENV = "WORKER_HEARTBEAT_FILE"
BEAT_EVERY_SECONDS = 5.0
METRICS_PORT_ENV = "WORKER_METRICS_PORT"


class DatabaseCheck:
    """Django's connection hygiene for a busy worker, without a round trip per unit of work.

    ``close_old_connections`` makes ``CONN_HEALTH_CHECKS`` test the connection (a ``SELECT 1``)
    before the next query. A worker that just used its connection gains nothing from that:
    if the database went away since, its next statement fails and the worker's own error
    handling reconnects. So the check runs only after an idle spell of ``idle_seconds``.
    """

    def __init__(self, idle_seconds: float = 1.0) -> None:
        self.idle_seconds = idle_seconds
        self._answered_at = -float("inf")

    def before_work(self) -> None:
        if time.monotonic() - self._answered_at >= self.idle_seconds:
            close_old_connections()

    def answered(self) -> None:
        """The database just answered: no check needed for ``idle_seconds``."""
        self._answered_at = time.monotonic()

    def forget(self) -> None:
        """After a database error: check before the next unit of work."""
        self._answered_at = -float("inf")


def stop_on_signals(stop_event: threading.Event) -> None:
    """Set ``stop_event`` on SIGTERM/SIGINT so the worker finishes its current message and exits."""

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop_event.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)


def serve_metrics() -> int | None:
    """With ``WORKER_METRICS_PORT`` set, serve this worker's metrics on that port.

    In containers each worker is alone in its own: nothing adds its samples to the web server's
    ``/metrics``, so Prometheus scrapes the worker itself. Locally the service's processes share
    one multi-process directory and the web server shows them all; leave the variable unset.
    """
    port = os.environ.get(METRICS_PORT_ENV)
    if not port:
        return None
    from prometheus_client import start_http_server

    start_http_server(int(port))
    return int(port)


def heartbeat_dir() -> Path:
    return VAR_DIR / "heartbeats"


def heartbeat_path(command: str) -> Path:
    """Where the worker started as ``manage.py <command>`` beats."""
    explicit = os.environ.get(HEARTBEAT_ENV)
    if explicit:
        return Path(explicit)
    return heartbeat_dir() / f"{settings.MESSAGING_SERVICE}.{command}"


def heartbeat_age(path: Path) -> float | None:
    """Seconds since the last beat in ``path``; None when there is none."""
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except FileNotFoundError:
        return None


class Heartbeat:
    """Touches ``path`` at most every ``every`` seconds; a ``path`` of None beats nowhere."""

    def __init__(self, path: Path | None, *, every: float = BEAT_EVERY_SECONDS) -> None:
        self.path = path
        self.every = every
        self._last = float("-inf")

    @classmethod
    def for_command(cls, command: str) -> Heartbeat:
        """The heartbeat of ``manage.py <command>``, not ready until its first beat."""
        heartbeat = cls(heartbeat_path(command))
        heartbeat.clear()  # a beat left by a previous run is not this one's
        return heartbeat

    def beat(self) -> None:
        if self.path is None or time.monotonic() - self._last < self.every:
            return
        self._last = time.monotonic()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            partial.write_text(json.dumps({"pid": os.getpid(), "at": time.time()}))
            partial.replace(self.path)  # readers never see a half-written file
        except OSError:  # a full or read-only disk must not stop the work; the probe will tell
            self._last = float("-inf")

    def clear(self) -> None:
        """No longer ready (starting, or stopped): a restarted worker must beat anew."""
        self._last = float("-inf")
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
