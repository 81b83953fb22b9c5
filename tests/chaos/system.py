"""The system under test: every service's real processes on the private broker and databases.

It reuses :class:`service_runtime.system.LocalSystem` (what ``make up`` runs), with per-service
databases on the private PostgreSQL clusters, a per-scenario name prefix on the private broker,
private ports and keys. A supervisor thread plays the part of systemd or Kubernetes: a process
that dies is started again after a short pause; deaths the suite did not cause are recorded.
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

from identity.keys import ensure_keypair
from messaging import crash_points, topology
from service_runtime import system as runtime
from service_runtime.system import SERVICES, LocalSystem, ManagedProcess
from tests.chaos.infra import Netns, PrivatePostgres, free_port

STAFF_USERNAME = "chaos-staff"
STAFF_PASSWORD = "chaos-staff-password-53"
RETRY_DELAYS_MS = (500, 2000, 5000)
RESTART_PAUSE_SECONDS = 1.0
# Every process with a port of its own: the services' web servers, and the gateway if any.
LISTENERS = (*SERVICES, *filter(None, [getattr(runtime, "GATEWAY", None)]))


@dataclass
class Backend:
    """Where the services' state lives for one scenario."""

    amqp_url: str  # for every service
    main_db: PrivatePostgres  # orders and user-notification
    inventory_db: PrivatePostgres
    inventory_amqp_url: str | None = None  # set when inventory reaches the broker otherwise
    inventory_db_host: str = "127.0.0.1"
    netns: Netns | None = None  # inventory's workers run inside it when set


def database_name(scenario: str, service: str) -> str:
    return f"chaos_{scenario}_{service}".replace("-", "_")


@dataclass
class ChaosSystem:
    scenario: str
    backend: Backend
    work_dir: Path
    # role label ("orders:run_relay") -> argv replacing the worker's own (same env and cwd)
    replace_argv: dict[str, list[str]] = field(default_factory=dict)
    system: LocalSystem | None = None
    database_urls: dict[str, str] = field(default_factory=dict)
    unexpected_exits: list[str] = field(default_factory=list)
    kills: dict[str, int] = field(default_factory=dict)
    _held_down: set[str] = field(default_factory=set)
    _restart: set[str] = field(default_factory=set)
    _wake: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def prefix(self) -> str:
        return f"chaos-{self.scenario}."

    def _cluster(self, service: str) -> PrivatePostgres:
        return self.backend.inventory_db if service == "inventory" else self.backend.main_db

    def start(self) -> None:
        keys = self.work_dir / "keys"
        ensure_keypair(keys / "jwt_private.pem", keys / "jwt_public.pem")
        service_env: dict[str, dict[str, str]] = {}
        for service in SERVICES:
            name = database_name(self.scenario, service.name)
            cluster = self._cluster(service.name)
            cluster.create_database(name)
            host = self.backend.inventory_db_host if service.name == "inventory" else "127.0.0.1"
            self.database_urls[service.name] = cluster.url(name, host=host)
            service_env[service.name] = {"DATABASE_URL": self.database_urls[service.name]}
        if self.backend.inventory_amqp_url:
            service_env["inventory"]["AMQP_URL"] = self.backend.inventory_amqp_url
        self.system = LocalSystem(
            env={
                "AMQP_URL": self.backend.amqp_url,
                "MESSAGING_PREFIX": self.prefix,
                "MESSAGING_RETRY_DELAYS_MS": ",".join(str(d) for d in RETRY_DELAYS_MS),
                "JWT_PRIVATE_KEY_FILE": str(keys / "jwt_private.pem"),
                "JWT_PUBLIC_KEY_FILE": str(keys / "jwt_public.pem"),
                "JWT_ACCESS_TOKEN_LIFETIME_SECONDS": "14400",
                "VAR_DIR": str(self.work_dir / "var"),
                "DJANGO_SUPERUSER_USERNAME": STAFF_USERNAME,
                "DJANGO_SUPERUSER_EMAIL": "chaos-staff@example.test",
                "DJANGO_SUPERUSER_PASSWORD": STAFF_PASSWORD,
                # Far away: a PENDING order must become final by recovering, not by the clock.
                "ORDER_PENDING_DEADLINE_SECONDS": "14400",
                "LOG_LEVEL": "INFO",
            },
            service_env=service_env,
            ports={spec.name: free_port() for spec in LISTENERS},
            log_dir=self.work_dir / "logs",
        )
        self.system.prepare()
        self.system.build_processes()
        for managed in self.system.processes:
            replacement = self.replace_argv.get(managed.label)
            if replacement is not None:
                managed.argv = list(replacement)
            netns = self.backend.netns
            if netns and managed.service.name == "inventory" and managed.role != "web":
                # The workers are the inventory processes that talk to the broker.
                managed.argv = [*netns.prefix(), *managed.argv]
        self.system.start()
        self.system.wait_ready(timeout=120)
        threading.Thread(target=self._supervise, daemon=True, name="supervisor").start()

    # --- processes ----------------------------------------------------------------------------

    @property
    def local(self) -> LocalSystem:
        assert self.system is not None
        return self.system

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
        if self.system is not None:
            with self._lock:
                self.system.stop()

    def drop(self) -> None:
        for service in SERVICES:
            with contextlib.suppress(psycopg.Error):
                self._cluster(service.name).drop_database(
                    database_name(self.scenario, service.name)
                )
        with contextlib.suppress(Exception):
            delete_broker_objects(self.backend.amqp_url, self.prefix)

    # --- reading state --------------------------------------------------------------------

    def connect_db(self, service: str) -> psycopg.Connection[tuple]:
        return psycopg.connect(self.database_urls[service], autocommit=True, connect_timeout=5)

    def manage(self, service: str, *args: str) -> tuple[int, str]:
        spec = next(s for s in SERVICES if s.name == service)
        result = self.local.manage(spec, *args)
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


def delete_broker_objects(url: str, prefix: str) -> None:
    with broker_channel(url) as channel:
        topology.delete_all(channel, topology.Names(prefix), RETRY_DELAYS_MS)


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
