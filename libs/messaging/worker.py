"""A service's worker process: its jobs (consumer, outbox relay, periodic work), a thread each,
until SIGTERM or SIGINT, and the heartbeat that says it is ready.

A :class:`Job` works in units. The skeleton gives it its own database connection (Django's are
per thread) and, if it needs one, its own broker connection opened in its thread (pika's are not
thread-safe) and serviced while it waits; a wait after each unit until a writer commits
(``NOTIFY``), the broker delivers or the poll interval passes; back-off and new connections after
a broker or database error; a stop event checked between units, so a signal lets a unit finish.

The :class:`Worker`'s heartbeat file carries the time its least recently healthy job was last
healthy (after a unit, or waiting): fresh only while every job is. ``manage.py worker_health
--max-age 30`` and the containers' ``probe heartbeat`` read it: ``WORKER_HEARTBEAT_FILE`` when
set (one worker per container), else ``<VAR_DIR>/heartbeats/<service>.<command>``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar, TypeVar

import psycopg
from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.db import connection as db_connection
from django.utils.module_loading import import_string
from pika.adapters.blocking_connection import BlockingConnection
from prometheus_client import Gauge

from messaging import notify
from messaging.broker import CONNECTION_ERRORS, backoff_delays, connect
from messaging.config import MessagingConfig
from service_runtime.settings import VAR_DIR

HEARTBEAT_ENV = "WORKER_HEARTBEAT_FILE"
BEAT_EVERY_SECONDS = 5.0
METRICS_PORT_ENV = "WORKER_METRICS_PORT"


class DatabaseCheck:
    """Django's connection hygiene for a busy worker, not repeated per unit of work.

    ``close_old_connections`` makes ``CONN_HEALTH_CHECKS`` test the connection before the next
    query: a socket poll on the services' PostgreSQL backend (``service_runtime.postgresql``),
    a ``SELECT 1`` round trip on Django's own backends. A worker that just used its connection
    gains nothing from either: if the database went away since, its next statement fails and
    the worker's own error handling reconnects. So the check runs only after an idle spell of
    ``idle_seconds``.
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


# The heartbeat as a metric, for the alert on a worker gone quiet (deploy/prometheus/alerts.yml):
# the file's time, labelled by the file's name (``<service>.<command>`` under ``make up``). With
# a multi-process directory the newest beat of that name wins, and a dead worker's last value
# stays behind, so its age keeps growing.
WORKER_HEARTBEAT = Gauge(
    "messaging_worker_heartbeat_timestamp_seconds",
    "When every job of the worker was last ready (Unix time), as in its heartbeat file.",
    ["worker"],
    multiprocess_mode="max",
)


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

    def beat(self, at: float | None = None) -> None:
        """Record that the worker was ready at ``at`` (a ``time.time()``; now by default)."""
        if self.path is None or time.monotonic() - self._last < self.every:
            return
        self._last = time.monotonic()
        at = time.time() if at is None else at
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            partial.write_text(json.dumps({"pid": os.getpid(), "at": at}))
            os.utime(partial, (at, at))  # readers take the file's age for the worker's
            partial.replace(self.path)  # readers never see a half-written file
            WORKER_HEARTBEAT.labels(self.path.name).set(at)
        except OSError:  # a full or read-only disk must not stop the work; the probe will tell
            self._last = float("-inf")

    def clear(self) -> None:
        """No longer ready (starting, or stopped): a restarted worker must beat anew."""
        self._last = float("-inf")
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)


logger = logging.getLogger("messaging.worker")

SQLITE_POLL_SECONDS = 0.05  # no NOTIFY on SQLite: a job with a channel polls this often
WAIT_SLICE_SECONDS = 0.5  # a waiting job checks the stop event and marks itself this often
DATABASE_ERRORS: tuple[type[Exception], ...] = (DatabaseError, psycopg.Error)
T = TypeVar("T")


class Job:
    """One kind of work, done in units (:meth:`work`: True when more is ready at once).

    ``broker_name``: it gets a broker connection of its own, so named, from ``config``.
    ``notify_channel``: a writer's commit wakes it; otherwise (and at most) it waits
    :meth:`wait_seconds`. ``start_line`` and ``stop_line`` are logged, filled from its attributes.
    """

    name: ClassVar[str] = "job"
    log: ClassVar[logging.Logger] = logger
    broker_name: ClassVar[str | None] = None
    notify_channel: ClassVar[str | None] = None
    gather_seconds: ClassVar[float] = 0.0  # after a wake-up, for the commits that follow
    start_line: ClassVar[str] = "{name} starting"
    stop_line: ClassVar[str] = "{name} stopped"
    poll_seconds: float = 1.0
    config: MessagingConfig | None = None

    def __init__(self) -> None:
        self.stop_event = threading.Event()
        self.healthy_at = -math.inf  # time.monotonic() of the last sign of health
        self.broker: BlockingConnection | None = None
        self._listener: psycopg.Connection[Any] | None = None
        self._database = DatabaseCheck()

    def work(self) -> bool:
        raise NotImplementedError

    def on_connect(self) -> None:
        """Its connections are open (again): declare, subscribe."""

    def on_disconnect(self) -> None:
        """Its connections are closed: forget what lived on them."""

    def wait_seconds(self) -> float:
        return self.poll_seconds

    def delivered(self) -> bool:
        """Whether its broker connection brought it work while it waited (a delivery)."""
        return False

    def run_forever(self) -> None:
        """Work until ``stop_event`` is set; after a lost connection, back off and reconnect."""
        self.log.info(self.start_line.format(name=self.name, **vars(self)))
        # Without a broker connection of its own, an OSError is a bug, not a lost broker.
        errors = (*DATABASE_ERRORS, *(CONNECTION_ERRORS if self.broker_name else ()))
        delays, failed = backoff_delays(), False
        while not self.stop_event.is_set():
            try:
                self._connect()
                while not self.stop_event.is_set():
                    notify.drain(self._listener)  # before looking: a commit from now on wakes
                    more = self.work()
                    self.healthy_at = time.monotonic()
                    if failed:
                        delays, failed = backoff_delays(), False
                    if not more:
                        self._wait(self.wait_seconds())
            except errors as exc:
                self._database.forget()
                delay, failed = next(delays), True
                lost = "the database" if isinstance(exc, DATABASE_ERRORS) else "the broker"
                self.log.warning("%s lost %s (%s); retrying in %.1fs", self.name, lost, exc, delay)
                self.stop_event.wait(delay)
            finally:
                self._disconnect()
        self.log.info(self.stop_line.format(name=self.name, **vars(self)))

    def _connect(self) -> None:
        close_old_connections()  # CONN_HEALTH_CHECKS: a connection broken meanwhile is replaced
        if self.broker_name is not None:
            assert self.config is not None, f"{self.name} needs a messaging config"
            self.broker = connect(self.config, name=self.broker_name)
        if self.notify_channel is not None:
            self._listener = notify.listen(self.notify_channel)
        self.on_connect()

    def _disconnect(self) -> None:
        listener, broker, self._listener, self.broker = self._listener, self.broker, None, None
        for close in (
            listener.close if listener else None,
            broker.close if broker and broker.is_open else None,
            db_connection.close,
        ):
            if close is not None:
                quietly(close)
        self.on_disconnect()

    def _wait(self, seconds: float) -> None:
        """Until a commit on its channel (or, without one, a delivery) wakes it, ``seconds``
        pass or it is stopped; healthy meanwhile, its broker connection serviced."""
        if self.notify_channel is not None and self._listener is None:
            seconds = min(seconds, SQLITE_POLL_SECONDS)
        deadline = time.monotonic() + seconds
        # Deliveries already taken off the connection (while its own work published or copied
        # on it) are work now: waiting would hold them until the next one arrives.
        while not self.stop_event.is_set() and not self.delivered():
            self.healthy_at = time.monotonic()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            piece = min(remaining, WAIT_SLICE_SECONDS)
            if self._listener is not None:
                if self.broker is not None:
                    self.broker.process_data_events(time_limit=0)  # keeps heartbeats flowing
                if any(True for _ in self._listener.notifies(timeout=piece, stop_after=1)):
                    self.stop_event.wait(self.gather_seconds)
                    return
            elif self.broker is not None:
                self.broker.process_data_events(time_limit=piece)  # returns on a delivery
                if self.delivered():
                    return
            else:
                self.stop_event.wait(piece)

    def sleep(self, seconds: float) -> None:
        """Sleep until ``seconds`` pass or the job is stopped, servicing the broker connection."""
        deadline = time.monotonic() + seconds
        while not self.stop_event.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self.broker is not None:
                self.broker.sleep(min(remaining, 0.25))
            else:
                self.stop_event.wait(remaining)

    def until_database_answers(self, call: Callable[[], T]) -> T:
        """``call()``, again with back-off while the database does not answer, so that work
        done (a batch received, an e-mail sent) is not given up; raises once stopping."""
        delays = backoff_delays()
        while True:
            try:
                return call()
            except DATABASE_ERRORS as exc:
                self._database.forget()
                if self.stop_event.is_set():
                    raise
                delay = next(delays)
                self.log.warning("database unavailable (%s); retrying in %.1fs", exc, delay)
                quietly(db_connection.close)
                self.sleep(delay)


class Worker:
    """A service's jobs in one process: a thread each, one stop event, one heartbeat.

    The heartbeat is fresh only while every job is healthy. A job that fails with an error it
    cannot recover from stops the others, and the worker exits: its supervisor starts it again.
    """

    def __init__(self, jobs: Sequence[Job], heartbeat: Heartbeat | None = None) -> None:
        self.jobs = list(jobs)
        self.stop_event = threading.Event()
        for job in self.jobs:
            job.stop_event = self.stop_event
        self.heartbeat = heartbeat or Heartbeat(None)
        self.failed: list[str] = []

    def run_forever(self) -> None:
        threads = [
            threading.Thread(target=self._run, args=(job,), name=job.name, daemon=True)
            for job in self.jobs
        ]
        for thread in threads:
            thread.start()
        try:
            while not self.stop_event.wait(1.0):
                ready_at = self.ready_at()
                if ready_at is not None:
                    self.heartbeat.beat(ready_at)
        finally:
            self.stop_event.set()
            for thread in threads:
                thread.join()
            self.heartbeat.clear()

    def ready_at(self) -> float | None:
        """When the least recently healthy job was last healthy; None before all have been."""
        oldest = min((job.healthy_at for job in self.jobs), default=-math.inf)
        if oldest == -math.inf:
            return None
        return time.time() - (time.monotonic() - oldest)

    def _run(self, job: Job) -> None:
        try:
            job.run_forever()
        except BaseException:
            logger.exception("%s failed; stopping the worker", job.name)
            self.failed.append(job.name)
            self.stop_event.set()


def configured_jobs() -> dict[str, type[Job]]:
    """The service's jobs, by name: ``settings.WORKER_JOBS`` (dotted paths of their classes)."""
    classes = [import_string(path) for path in settings.WORKER_JOBS]
    return {cls.name: cls for cls in classes}


def serve(jobs: Sequence[Job], command: str = "run_worker") -> bool:
    """Run ``jobs`` as this process's worker until SIGTERM or SIGINT; False when one failed."""
    worker = Worker(jobs, Heartbeat.for_command(command))
    stop_on_signals(worker.stop_event)
    serve_metrics()
    names = ", ".join(job.name for job in worker.jobs)
    logger.info("worker of %s starting: %s", settings.MESSAGING_SERVICE, names)
    worker.run_forever()
    logger.info("worker of %s stopped", settings.MESSAGING_SERVICE)
    return not worker.failed


def quietly(close: Callable[[], object]) -> None:
    """Close something that may be broken already; nothing is left to release then."""
    try:
        close()
    except Exception:
        logger.debug("ignored error while closing", exc_info=True)
