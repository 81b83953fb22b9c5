"""Private infrastructure for fault injection: PostgreSQL clusters, RabbitMQ nodes, a namespace.

Everything lives under one temporary directory, listens on free non-standard ports and is
stopped by the process ids this module started. The shared servers (PostgreSQL on 5432,
RabbitMQ on 5672) are never touched: :func:`free_port` refuses their ports, and every command
names its own data directory, node name or namespace explicitly.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pika

from devstack import system

PG_BIN = Path(os.environ.get("CHAOS_PG_BIN", "/usr/lib/postgresql/15/bin"))
RABBITMQ_BIN = Path(os.environ.get("CHAOS_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
# Ports of the shared servers (and of Erlang's port mapper): never ours to use.
SHARED_PORTS = frozenset({4369, 5432, 5672, 15672, 25672})
LOOPBACK_DISTRIBUTION = "-kernel inet_dist_use_interface {127,0,0,1}"


class InfraError(RuntimeError):
    """A private server could not be set up; the message says which and why."""


def free_port(*, restartable: bool = False) -> int:
    """A port for one of our servers; ``restartable`` for those the faults stop and start
    again (see ``devstack.system.free_port``)."""
    return system.free_port(exclude=SHARED_PORTS, restartable=restartable)


def _run(argv: Sequence[str], *, timeout: float = 120, check: bool = True, **kwargs: object) -> str:
    result = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )
    if check and result.returncode != 0:
        raise InfraError(
            f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return str(result.stdout)


def missing_tools() -> list[str]:
    """What this machine lacks to run the suite (empty when it has everything)."""
    missing = []
    if not (PG_BIN / "initdb").exists():
        missing.append(f"PostgreSQL binaries in {PG_BIN}")
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        missing.append(f"rabbitmq-server in {RABBITMQ_BIN}")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing.append("a 'postgres' user to run initdb as (initdb refuses root)")
    return missing


# ---------------------------------------------------------------------------------------------
# PostgreSQL


class PrivatePostgres:
    """A PostgreSQL cluster of our own: initdb into a temporary directory, trust auth.

    Durability settings are relaxed (``fsync=off``): the faults injected are process and
    server restarts, never a machine crash, so the write-ahead log in the page cache is enough
    for crash recovery, and the shared CPUs are spent on the system under test.
    """

    def __init__(self, root: Path, name: str, listen: Sequence[str] = ("127.0.0.1",)) -> None:
        self.name = name
        self.dir = root / f"pg-{name}"
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.port = free_port(restartable=True)
        self.listen = tuple(listen)
        self._user = "postgres" if os.geteuid() == 0 else None

    def _as_owner(self, argv: Sequence[str]) -> list[str]:
        return ["runuser", "-u", self._user, "--", *argv] if self._user else list(argv)

    def init(self) -> None:
        self.dir.mkdir(parents=True)
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self.dir.chmod(0o700)
        _run(
            self._as_owner(
                [
                    str(PG_BIN / "initdb"),
                    *("-D", str(self.data), "-A", "trust", "-U", "postgres"),
                    *("-E", "UTF8", "--locale", "C", "--no-sync"),
                ]
            )
        )
        # The inventory workers may reach it from their namespace (see Netns).
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {Netns.SUBNET} trust\n")

    def start(self) -> None:
        options = " ".join(
            [
                f"-p {self.port}",
                f"-k {self.dir}",
                f"-c listen_addresses={','.join(self.listen)}",
                "-c fsync=off",
                "-c full_page_writes=off",
                "-c max_connections=300",
            ]
        )
        _run(
            self._as_owner(
                [
                    str(PG_BIN / "pg_ctl"),
                    *("-D", str(self.data), "-o", options, "-l", str(self.log)),
                    *("-w", "-t", "60", "start"),
                ]
            )
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster: ``fast`` disconnects clients cleanly, ``immediate`` is a crash."""
        _run(
            self._as_owner(
                [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"]
            ),
            check=False,
        )

    def running(self) -> bool:
        result = subprocess.run(
            self._as_owner([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status"]),
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def url(self, database: str = "postgres", host: str = "127.0.0.1") -> str:
        return f"postgresql://postgres@{host}:{self.port}/{database}"


# ---------------------------------------------------------------------------------------------
# RabbitMQ


class RabbitNode:
    """A RabbitMQ node of our own: its own node name, ports, data and log directories.

    ``home`` holds the Erlang cookie shared by the suite's nodes (and their ``rabbitmqctl``),
    distinct from the shared broker's.
    """

    def __init__(
        self,
        root: Path,
        name: str,
        home: Path,
        listen: Sequence[str] = ("127.0.0.1",),
        extra_config: str = "",
    ) -> None:
        self.name = name
        self.node = f"{name}@localhost"
        self.dir = root / f"rabbit-{name}"
        self.home = home
        self.port = free_port(restartable=True)
        self.dist_port = free_port(restartable=True)
        self.listen = tuple(listen)
        self.extra_config = extra_config
        self.process: subprocess.Popen[bytes] | None = None
        self._log: object = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            {
                "HOME": str(self.home),
                "RABBITMQ_NODENAME": self.node,
                "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
                "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
                "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.dir / "log"),
                "RABBITMQ_PID_FILE": str(self.dir / "node.pid"),
                # Erlang distribution on loopback only, like the shared broker's.
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": LOOPBACK_DISTRIBUTION,
            }
        )
        return env

    def _write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        lines = [f"listeners.tcp.{i} = {host}:{self.port}" for i, host in enumerate(self.listen, 1)]
        lines += [
            "loopback_users = none",  # guest from the inventory namespace's address too
            "disk_free_limit.absolute = 50MB",
            "log.file.level = info",
            "log.console = false",
            self.extra_config,
        ]
        (self.dir / "rabbitmq.conf").write_text("\n".join(lines) + "\n")
        (self.dir / "rabbitmq-env.conf").write_text("")
        (self.dir / "enabled_plugins").write_text("[].\n")

    def start(self) -> None:
        self._write_config()
        log = (self.dir / "server.out").open("ab")
        self._log = log
        self.process = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=self.env(),
            cwd=self.dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killpg reaches beam and helpers
        )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        params = pika.URLParameters(self.url())
        params.connection_attempts = 1
        params.socket_timeout = 2
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise InfraError(f"RabbitMQ node {self.node} exited: see {self.dir}/server.out")
            try:
                pika.BlockingConnection(params).close()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise InfraError(f"RabbitMQ node {self.node} not ready in {timeout}s") from None
                time.sleep(0.5)

    def ctl(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        return _run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self.env(),
            timeout=timeout,
            check=check,
        )

    def stop(self) -> None:
        """A clean shutdown (``rabbitmqctl stop``), then SIGKILL if it does not go."""
        if not self.running():
            return
        with contextlib.suppress(InfraError, subprocess.TimeoutExpired):
            self.ctl("stop", timeout=60)
        assert self.process is not None
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """``kill -9`` the node: no goodbye to clients or to the other cluster members."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)

    def url(self, host: str = "127.0.0.1") -> str:
        return f"amqp://guest:guest@{host}:{self.port}/%2F"


def erlang_home(root: Path, cookie: str) -> Path:
    home = root / "erlang-home"
    home.mkdir(parents=True, exist_ok=True)
    cookie_file = home / ".erlang.cookie"
    cookie_file.write_text(cookie)
    cookie_file.chmod(0o400)
    return home


# ---------------------------------------------------------------------------------------------
# A network namespace for the inventory workers


class Netns:
    """A network namespace joined to the host by two veth links: one to the broker, one to
    the database. Cutting the broker link leaves the processes running and their database
    reachable, while every packet to or from the broker is dropped (no reset: a real cut).
    """

    SUBNET = "10.231.0.0/16"
    BROKER_HOST = "10.231.1.1"
    DATABASE_HOST = "10.231.2.1"

    def __init__(self, tag: str) -> None:
        self.name = f"chaos-inv-{tag}"
        self.broker_link = f"chb{tag}"[:15]
        self.database_link = f"chd{tag}"[:15]
        self.ready = False

    @staticmethod
    def problem() -> str | None:
        """Why namespaces cannot be used here, or None."""
        if shutil.which("ip") is None:
            return "the `ip` command (iproute2) is not installed"
        if os.geteuid() != 0:
            return "creating network namespaces needs root (CAP_NET_ADMIN)"
        addresses = _run(["ip", "-4", "-o", "addr"], check=False)
        if "10.231." in addresses:
            return "10.231.0.0/16 is already in use on this host"
        return None

    def setup(self) -> None:
        _run(["ip", "netns", "add", self.name])
        self.ready = True
        inside = ["ip", "netns", "exec", self.name]
        for link, host_ip, ns_ip, ns_if in (
            (self.broker_link, self.BROKER_HOST, "10.231.1.2", "ethbroker"),
            (self.database_link, self.DATABASE_HOST, "10.231.2.2", "ethdb"),
        ):
            _run(["ip", "link", "add", link, "type", "veth", "peer", "name", ns_if])
            _run(["ip", "link", "set", ns_if, "netns", self.name])
            _run(["ip", "addr", "add", f"{host_ip}/24", "dev", link])
            _run(["ip", "link", "set", link, "up"])
            _run([*inside, "ip", "addr", "add", f"{ns_ip}/24", "dev", ns_if])
            _run([*inside, "ip", "link", "set", ns_if, "up"])
        _run([*inside, "ip", "link", "set", "lo", "up"])

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def cut_broker(self) -> None:
        _run(["ip", "link", "set", self.broker_link, "down"])

    def restore_broker(self) -> None:
        _run(["ip", "link", "set", self.broker_link, "up"])

    def teardown(self) -> None:
        if not self.ready:
            return
        for link in (self.broker_link, self.database_link):
            _run(["ip", "link", "del", link], check=False)
        _run(["ip", "netns", "del", self.name], check=False)
        self.ready = False


# ---------------------------------------------------------------------------------------------
# A TCP front for a RabbitMQ cluster


class TcpFailover:
    """What a load balancer does in front of a cluster: each new client connection goes to
    the first backend that accepts it, so clients reconnect to a surviving node by themselves.
    """

    def __init__(self, backends: Sequence[tuple[str, int]]) -> None:
        self.backends = list(backends)
        self.port = free_port()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._stopped = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._next = 0
        threading.Thread(target=self._accept, daemon=True, name="tcp-failover").start()

    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _connect_backend(self) -> socket.socket | None:
        with self._lock:
            start = self._next
            self._next = (self._next + 1) % len(self.backends)
        for i in range(len(self.backends)):
            host, port = self.backends[(start + i) % len(self.backends)]
            try:
                return socket.create_connection((host, port), timeout=2)
            except OSError:
                continue
        return None

    def _serve(self, client: socket.socket) -> None:
        backend = self._connect_backend()
        if backend is None:
            client.close()
            return
        backend.settimeout(None)
        with self._lock:
            self._sockets.update({client, backend})
        threading.Thread(target=self._pipe, args=(backend, client), daemon=True).start()
        self._pipe(client, backend)

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
                with self._lock:
                    self._sockets.discard(sock)

    def close(self) -> None:
        self._stopped.set()
        self._server.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
