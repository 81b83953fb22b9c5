"""The whole system as local processes: every service's web server and worker (its consumer,
relay and periodic jobs).

Used by ``make up`` (through ``python -m devstack.local_run``) and by the end-to-end
tests, so that what the tests start is exactly what a developer runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from messaging.versions import LATEST
from service_runtime.metrics_dir import ENV as METRICS_DIR_ENV
from service_runtime.metrics_dir import reset_multiprocess_dir
from service_runtime.settings import REPO_ROOT, VAR_DIR

PR_SET_PDEATHSIG = 1
# Run once, with the local broker account; containers get the layout from the broker's
# definitions file instead (per-service accounts may not declare other services' names).
BROKER_LAYOUT_COMMAND = ("declare_topology",)


def _die_with_parent() -> None:
    """In the child: receive SIGTERM when the launcher dies, however it dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


_handed_out: set[int] = set()


def free_port(exclude: frozenset[int] = frozenset(), *, restartable: bool = False) -> int:
    """A port nothing listens on, never one this process handed out before.

    The kernel may give the same free port to two binds in a row once the first socket is
    closed; two services started on one port would answer each other's requests.

    ``restartable``: for a server that is stopped and started again on the same port, one below
    the kernel's range of ephemeral ports (those it hands to outgoing connections). While such a
    server is down its clients keep reconnecting, each attempt from a new ephemeral port, and
    one that lands on the server's port keeps the server from listening there again (a private
    RabbitMQ node failed to restart so: ``dist_port_already_used``).
    """
    candidates = _below_ephemeral() if restartable else None
    while True:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", next(candidates) if candidates else 0))
            except OSError:  # taken: try another
                continue
            port = int(sock.getsockname()[1])
        if port not in _handed_out and port not in exclude:
            _handed_out.add(port)
            return port


EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
RESTARTABLE_SPAN = 8000  # ports below the ephemeral range that restartable servers draw from


def _below_ephemeral() -> Iterator[int]:
    """Random ports from the ``RESTARTABLE_SPAN`` below the kernel's ephemeral range."""
    try:
        low = int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default
    first = max(1024, low - RESTARTABLE_SPAN)
    while True:
        yield random.randrange(first, low)


def hold_port(exclude: frozenset[int] = frozenset()) -> socket.socket:
    """A free port, kept by a bound socket (not listening) until the caller closes it.

    Between choosing a port and a server binding it lie the databases' creation and the
    migrations, seconds during which any other program on the machine (another test run's
    system, asking the kernel for a free port) could take it: requests meant for one of our
    services then reach another program's server. While the socket is held the kernel offers
    the port to nobody else, and a bind without ``SO_REUSEADDR`` fails; our servers (gunicorn,
    the gateway) set ``SO_REUSEADDR`` and can still listen on it, also when one is killed and
    started again.
    """
    while True:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
        if port not in _handed_out and port not in exclude:
            _handed_out.add(port)
            return sock
        sock.close()


def listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on ``port`` (True where ``/proc`` cannot
    tell): an HTTP answer on a port proves a server is up, not that it is ours."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        return True
    listening = set()
    for table in tables:
        with contextlib.suppress(OSError):
            for line in table.read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rpartition(":")[2], 16) == port:
                    listening.add(f"socket:[{inode}]")
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) in listening:
                    return True
    return False


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


# What the processes of one checkout publish: every service runs the same release, so each
# publishes the newest version of its events (docs/operations.md, "Upgrades").
VERSIONS_ENV = "MESSAGING_EVENT_VERSIONS"
ONE_RELEASE_VERSIONS = LATEST


# The management command of a service's worker process (``messaging.worker``), and where it
# beats (``messaging.worker.HEARTBEAT_ENV``, not imported: that loads Django's database layer).
WORKER_COMMAND = "run_worker"
HEARTBEAT_ENV = "WORKER_HEARTBEAT_FILE"


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    port: int
    workers: tuple[str, ...] = (WORKER_COMMAND,)  # commands run as long-lived processes
    setup: tuple[tuple[str, ...], ...] = ()  # management commands run once after migrate

    @property
    def directory(self) -> Path:
        return REPO_ROOT / "services" / self.name

    @property
    def env_prefix(self) -> str:
        return self.name.upper().replace("-", "_")


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("inventory", 8001),
    ServiceSpec("orders", 8002),
    ServiceSpec("user-notification", 8003, setup=(("ensure_superuser",),)),
)


@dataclass(frozen=True)
class GatewaySpec(ServiceSpec):
    """The web console and every API on one address (``devstack.gateway``)."""

    @property
    def directory(self) -> Path:
        return REPO_ROOT


GATEWAY = GatewaySpec("gateway", 8000, ())


def service_spec(name: str) -> ServiceSpec:
    """The service (or the gateway) called ``name``."""
    return next(s for s in (*SERVICES, GATEWAY) if s.name == name)


@dataclass
class ManagedProcess:
    service: ServiceSpec
    role: str  # "web" or a worker command
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log: IO[str] | None = None
    process: subprocess.Popen[str] | None = None
    restarts: int = 0

    @property
    def label(self) -> str:
        return f"{self.service.name}:{self.role}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdout=self.log if self.log else subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # signals to the group reach gunicorn's workers too
            preexec_fn=_die_with_parent,
        )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.running():
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def stop(self, timeout: float = 10.0) -> None:
        if not self.running():
            return
        assert self.process is not None
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait(5)


@dataclass
class LocalSystem:
    """Prepares and runs every service; ``env`` applies to all, ``service_env`` to one each.

    ``worker_processes`` of each worker command run side by side (competing consumers): the
    first has the command as its role, the others ``<command>-2``, ``<command>-3``...

    ``sources`` runs a service from another source tree (a checkout of another version, with
    its own ``services/`` and ``libs/``) instead of this one: how a test starts the system at
    an older version and upgrades it one service at a time (:meth:`upgrade`).
    """

    env: Mapping[str, str] = field(default_factory=dict)
    service_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    ports: Mapping[str, int] = field(default_factory=dict)
    web_workers: int = 2
    worker_processes: int = 1
    log_dir: Path | None = None
    sources: dict[str, Path] = field(default_factory=dict)
    processes: list[ManagedProcess] = field(default_factory=list)
    # False when the broker was provisioned from its definitions file (per-service accounts,
    # each allowed to declare only its own names, as in the containers).
    declare_broker_layout: bool = True

    def port(self, service: ServiceSpec) -> int:
        return self.ports.get(service.name, service.port)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port(service_spec(name))}"

    def directory(self, service: ServiceSpec) -> Path:
        """Where the service's commands run: its folder in its source tree."""
        root = self.sources.get(service.name)
        return service.directory if root is None else root / "services" / service.name

    def environment(self, service: ServiceSpec) -> dict[str, str]:
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        root = self.sources.get(service.name)
        if root is not None:  # that tree's libraries, ahead of this checkout's installed ones
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(root / "libs"), env.get("PYTHONPATH")])
            )
        own_db = os.environ.get(f"{service.env_prefix}_DATABASE_URL")
        if own_db:
            env["DATABASE_URL"] = own_db
        else:
            env.pop("DATABASE_URL", None)  # one database per service: never share one URL
        # All of a service's processes, and only its, add up their metrics in one directory.
        env[METRICS_DIR_ENV] = str(Path(env.get("VAR_DIR") or VAR_DIR) / "metrics" / service.name)
        env.update(self.service_env.get(service.name, {}))
        return env

    def reset_metrics(self) -> None:
        """Empty every service's metrics directory: a new run starts its counts at zero."""
        for service in SERVICES:
            reset_multiprocess_dir(Path(self.environment(service)[METRICS_DIR_ENV]))

    def manage(self, service: ServiceSpec, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.directory(service),
            env=self.environment(service),
            capture_output=True,
            text=True,
            check=False,
        )

    def prepare(self, *, side_by_side: bool = False) -> None:
        """Declare the broker layout, then apply each service's migrations and run its set-up
        commands: one service after the other, or the services side by side (faster).

        Raises with the command's output when one fails.
        """
        if self.declare_broker_layout:
            self._run_commands(SERVICES[0], BROKER_LAYOUT_COMMAND)
        pool = ThreadPoolExecutor(len(SERVICES) if side_by_side else 1)
        try:
            futures = [
                pool.submit(self._run_commands, service, ("migrate", "--noinput"), *service.setup)
                for service in SERVICES
            ]
            for future in futures:
                future.result()
        finally:
            pool.shutdown(cancel_futures=True)  # after a failure, start no other service's

    def _run_commands(self, service: ServiceSpec, *commands: tuple[str, ...]) -> None:
        for command in commands:
            result = self.manage(service, *command)
            if result.returncode != 0:
                raise RuntimeError(
                    f"{service.name}: manage.py {' '.join(command)} failed:\n"
                    f"{result.stdout}{result.stderr}"
                )

    def build_processes(self) -> None:
        self.processes = [p for service in SERVICES for p in self._service_processes(service)]
        gateway = [
            sys.executable, "-m", "devstack.gateway",
            "--bind", f"127.0.0.1:{self.port(GATEWAY)}",
            *(f"--upstream={s.name}={self.url(s.name)}" for s in SERVICES),
        ]  # fmt: skip
        self.processes.append(self._process(GATEWAY, "web", gateway, self.environment(GATEWAY)))

    def _service_processes(self, service: ServiceSpec) -> list[ManagedProcess]:
        """The service's web server and its worker processes, not started."""
        env = self.environment(service)
        web = [
            sys.executable, "-m", "gunicorn", "config.wsgi:application",
            "--config", "python:service_runtime.gunicorn_conf",  # JSON logs, access log too
            "--bind", f"127.0.0.1:{self.port(service)}",
            "--workers", str(self.web_workers),
            "--access-logfile", "-",
            "--graceful-timeout", "5",
        ]  # fmt: skip
        processes = [self._process(service, "web", web, env)]
        for worker in service.workers:
            argv = [sys.executable, "manage.py", worker]
            for replica in range(1, self.worker_processes + 1):
                role = worker if replica == 1 else f"{worker}-{replica}"
                # Each beats in a file of its own, <service>.<role> (messaging.worker).
                heartbeat = Path(env.get("VAR_DIR") or VAR_DIR) / "heartbeats"
                own = {**env, HEARTBEAT_ENV: str(heartbeat / f"{service.name}.{role}")}
                processes.append(self._process(service, role, argv, own))
        return processes

    def upgrade(self, name: str, source: Path | None = None, timeout: float = 60.0) -> None:
        """Replace one running service by the version in ``source`` (this checkout when None),
        as a deployment does: stop its processes, declare the broker layout and migrate with
        the new version, start its processes and wait until its web server answers. The other
        services keep running; messages for this one wait in its queue meanwhile."""
        service = service_spec(name)
        old = [p for p in self.processes if p.service.name == name]
        for managed in old:
            managed.stop()
            if managed.log:
                managed.log.close()
        if source is None:
            self.sources.pop(name, None)
        else:
            self.sources[name] = source
        layout = (BROKER_LAYOUT_COMMAND,) if self.declare_broker_layout else ()
        self._run_commands(service, *layout, ("migrate", "--noinput"), *service.setup)
        new = self._service_processes(service)
        self.processes = [p for p in self.processes if p.service.name != name] + new
        for managed in new:
            managed.start()
        self._wait_answers(service, time.monotonic() + timeout)

    def _process(
        self, service: ServiceSpec, role: str, argv: list[str], env: dict[str, str]
    ) -> ManagedProcess:
        log = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log = (self.log_dir / f"{service.name}.{role}.log").open("a", buffering=1)
        return ManagedProcess(service, role, argv, env, self.directory(service), log)

    def ports_in_use(self) -> list[int]:
        return [self.port(s) for s in (*SERVICES, GATEWAY) if port_in_use(self.port(s))]

    def start(self) -> None:
        if not self.processes:
            self.build_processes()
        self.reset_metrics()
        for managed in self.processes:
            managed.start()

    def find(self, service: str, role: str) -> ManagedProcess:
        return next(p for p in self.processes if p.service.name == service and p.role == role)

    def workers_of(self, service: str) -> list[ManagedProcess]:
        """The service's worker processes (every one but its web server)."""
        return [p for p in self.processes if p.service.name == service and p.role != "web"]

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until every web server answers HTTP; raise if one does not in time."""
        deadline = time.monotonic() + timeout
        for service in (*SERVICES, GATEWAY):
            self._wait_answers(service, deadline)

    def _wait_answers(self, service: ServiceSpec, deadline: float) -> None:
        path = "/health/live" if service in SERVICES else "/api/"
        url = f"{self.url(service.name)}{path}"
        web = next((p for p in self.processes if p.service == service and p.role == "web"), None)
        while True:
            crashed = [p.label for p in self.processes if p.process and not p.running()]
            if crashed:
                raise RuntimeError(f"processes exited during start-up: {', '.join(crashed)}")
            try:
                urllib.request.urlopen(url, timeout=2)  # noqa: S310 - our own localhost URL
                answered = True
            except urllib.error.HTTPError:
                answered = True  # any HTTP answer means a server is up
            except (urllib.error.URLError, OSError):
                answered = False
            # ...but it must be this service's: another program's server on the port would
            # answer its requests with 404s.
            pid = web.process.pid if web is not None and web.process is not None else None
            if answered and (pid is None or listens_on(pid, self.port(service))):
                return
            if time.monotonic() > deadline:
                if answered:
                    raise RuntimeError(
                        f"{service.name}: another program's server answers at {url}, not ours"
                    )
                raise RuntimeError(f"{service.name} did not answer at {url}")
            time.sleep(0.2)

    def stop(self) -> None:
        threads = [threading.Thread(target=p.stop) for p in self.processes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for managed in self.processes:
            if managed.log:
                managed.log.close()
