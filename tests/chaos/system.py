"""The system under test: every service's real processes on the private broker and databases.

It is a :class:`devstack.stack.Stack` (what the end-to-end tests and the benchmark start), with
per-service databases on the private PostgreSQL clusters, a per-scenario name prefix on the
private broker, private ports and keys. A supervisor thread plays the part of systemd or
Kubernetes: a process that dies is started again after a short pause; deaths the suite did not
cause are recorded.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pika
import psycopg

from devstack.stack import Postgres, Stack, StackSpec, Staff
from devstack.system import LocalSystem, ManagedProcess
from messaging import crash_points, topology
from tests.chaos.infra import SHARED_PORTS, Netns, PrivatePostgres

STAFF_USERNAME = "chaos-staff"
STAFF_PASSWORD = "chaos-staff-password-53"
RETRY_DELAYS_MS = (500, 2000, 5000)
RESTART_PAUSE_SECONDS = 1.0


@dataclass
class Backend:
    """Where the services' state lives for one scenario."""

    amqp_url: str  # for every service
    main_db: PrivatePostgres  # orders and user-notification
    inventory_db: PrivatePostgres
    inventory_amqp_url: str | None = None  # set when inventory reaches the broker otherwise
    inventory_db_host: str = "127.0.0.1"
    netns: Netns | None = None  # inventory's workers run inside it when set

    def database_server(self, service: str) -> Postgres:
        if service == "inventory":
            return Postgres(self.inventory_db.url(), host=self.inventory_db_host)
        return Postgres(self.main_db.url())


@dataclass
class ChaosSystem:
    scenario: str
    backend: Backend
    work_dir: Path
    # role label ("orders:run_worker") -> argv replacing the process's own (same env and cwd)
    replace_argv: dict[str, list[str]] = field(default_factory=dict)
    worker_processes: int = 1  # of each service's worker
    extra_env: dict[str, str] = field(default_factory=dict)  # more settings for every service
    unexpected_exits: list[str] = field(default_factory=list)
    kills: dict[str, int] = field(default_factory=dict)
    _held_down: set[str] = field(default_factory=set)
    _restart: set[str] = field(default_factory=set)
    _wake: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    stack: Stack = field(init=False)

    def __post_init__(self) -> None:
        service_env: dict[str, dict[str, str]] = {}
        if self.backend.inventory_amqp_url:
            service_env["inventory"] = {"AMQP_URL": self.backend.inventory_amqp_url}
        self.stack = Stack(
            StackSpec(
                run_id=f"chaos_{self.scenario}",
                work_dir=self.work_dir,
                staff=Staff(STAFF_USERNAME, STAFF_PASSWORD, "chaos-staff@example.test"),
                broker_url=self.backend.amqp_url,
                retry_delays_ms=RETRY_DELAYS_MS,
                database_server=self.backend.database_server,
                env={
                    "JWT_ACCESS_TOKEN_LIFETIME_SECONDS": "14400",
                    # Far away: a PENDING order must become final by recovering, not by the clock.
                    "ORDER_PENDING_DEADLINE_SECONDS": "14400",
                    **self.extra_env,
                },
                service_env=service_env,
                reserved_ports=SHARED_PORTS,
                worker_processes=self.worker_processes,
                adapt_process=self._adapt,
            )
        )

    @property
    def prefix(self) -> str:
        return self.stack.prefix

    @property
    def database_urls(self) -> dict[str, str]:
        return self.stack.database_urls

    def _adapt(self, managed: ManagedProcess) -> None:
        replacement = self.replace_argv.get(managed.label)
        if replacement is not None:
            managed.argv = list(replacement)
        netns = self.backend.netns
        if netns and managed.service.name == "inventory" and managed.role != "web":
            # The workers are the inventory processes that talk to the broker.
            managed.argv = [*netns.prefix(), *managed.argv]

    def start(self) -> None:
        self.stack.start()
        threading.Thread(target=self._supervise, daemon=True, name="supervisor").start()

    # --- processes ----------------------------------------------------------------------------

    @property
    def local(self) -> LocalSystem:
        return self.stack.system

    def url(self, service: str) -> str:
        return self.local.url(service)

    def process(self, label: str) -> ManagedProcess:
        service, role = label.split(":")
        return self.local.find(service, role)

    def processes_of(self, service: str) -> list[ManagedProcess]:
        return [p for p in self.local.processes if p.service.name == service]

    def kill(self, label: str, *, restart_after: float | None = RESTART_PAUSE_SECONDS) -> None:
        """``kill -9`` one process (its whole group); the supervisor starts it again."""
        managed = self.process(label)
        with self._lock:
            self._held_down.add(label)
            _kill_now(managed)
            self.kills[label] = self.kills.get(label, 0) + 1
        if restart_after is not None:
            time.sleep(restart_after)
            self.start_again(label)

    def crash_at(self, label: str, point: str, timeout: float = 60.0) -> bool:
        """``kill -9`` one process, start it again with ``MESSAGING_CRASH_POINT=point`` so that
        it kills itself there (the first time one of its commits gets that far: a web server's
        workers each time, until this ends), then start it again as it was. False when it did
        not reach the point within ``timeout`` seconds."""
        managed = self.process(label)
        assert managed.log is not None
        log, marker = Path(managed.log.name), f"crash point {point} reached"
        self.kill(label, restart_after=None)
        offset, dead = log.stat().st_size, managed.process
        original = managed.env
        managed.env = {**original, crash_points.ENV: point}
        with self._lock:
            self._restart.add(label)  # started once, armed; held down: its death is expected
        self._wake.set()
        wait_until(lambda: managed.process is not dead, 30, interval=0.05)
        reached = wait_until(lambda: _written_since(log, offset, marker), timeout, interval=0.1)
        with self._lock:
            _kill_now(managed)  # a web server's master outlives its workers
            managed.env = original
        self.start_again(label)
        return reached

    def hold_down(self, labels: Sequence[str]) -> None:
        for label in labels:
            self.kill(label, restart_after=None)

    def start_again(self, label: str) -> None:
        """Have the supervisor start the process again, and wait until it runs."""
        with self._lock:
            self._held_down.discard(label)
            self._restart.add(label)
        self._wake.set()
        wait_until(lambda: self.process(label).running(), 30, interval=0.05)

    def _supervise(self) -> None:
        # Every (re)start happens on this one long-lived thread: a child's PR_SET_PDEATHSIG
        # (set by LocalSystem) fires when the *thread* that started it ends, so a process
        # started from a short-lived injector thread would be sent SIGTERM when that ends.
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            with self._lock:
                if self._stop.is_set():
                    return
                for managed in self.local.processes:
                    if managed.running():
                        continue
                    if managed.label in self._restart:
                        self._restart.discard(managed.label)
                    elif managed.label in self._held_down:
                        continue
                    else:
                        code = managed.process.returncode if managed.process else None
                        self.unexpected_exits.append(f"{managed.label} exited with {code}")
                    managed.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        with self._lock:
            self.stack.stop()

    def drop(self) -> None:
        self.stack.remove()

    # --- reading state --------------------------------------------------------------------

    def connect_db(self, service: str) -> psycopg.Connection[tuple]:
        return psycopg.connect(self.database_urls[service], autocommit=True, connect_timeout=5)

    def manage(self, service: str, *args: str) -> tuple[int, str]:
        result = self.stack.manage(service, *args)
        return result.returncode, result.stdout + result.stderr

    def queue_depths(self, url: str | None = None) -> dict[str, int]:
        """Messages waiting in every queue of this scenario (main, retry, dead-letter)."""
        names = topology.Names(self.prefix)
        depths: dict[str, int] = {}
        with broker_channel(url or self.backend.amqp_url) as channel:
            for service in topology.CONSUMES:
                queues = [names.queue(service), names.dead_letter_queue(service)]
                queues += [names.retry_queue(service, d) for d in RETRY_DELAYS_MS]
                for queue in queues:
                    frame = channel.queue_declare(queue, passive=True)
                    depths[queue] = int(frame.method.message_count)
        return depths


@contextlib.contextmanager
def broker_channel(url: str) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = 5
    connection = pika.BlockingConnection(params)
    try:
        yield connection.channel()
    finally:
        with contextlib.suppress(Exception):
            connection.close()


def doubling_relay_argv() -> list[str]:
    return [sys.executable, str(Path(__file__).with_name("doubling_relay.py"))]


def _kill_now(managed: ManagedProcess) -> None:
    """``kill -9`` the process's whole group and wait until it is gone."""
    managed.signal(signal.SIGKILL)
    if managed.process is not None:
        with contextlib.suppress(Exception):
            managed.process.wait(10)


def _written_since(log: Path, offset: int, text: str) -> bool:
    with log.open(errors="replace") as lines:
        lines.seek(offset)
        return text in lines.read()


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return True
        except Exception:  # a server still coming back: look again
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
