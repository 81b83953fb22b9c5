"""A whole system of our own, for the end-to-end tests, the benchmark and fault injection.

Every service gets a new database, the run a broker name prefix, free ports and a key pair of
its own, so that runs never collide with each other or with ``make up``; the e-mail worker
writes each message to a file under the work directory. What differs between those who start
one (the broker, the database servers, the staff account, extra settings, changed commands) is
a :class:`StackSpec`. Afterwards the processes stop and the databases and broker objects go.
"""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pika
import psycopg
from psycopg import sql

from devstack.system import (
    GATEWAY,
    ONE_RELEASE_VERSIONS,
    SERVICES,
    VERSIONS_ENV,
    LocalSystem,
    ManagedProcess,
    hold_port,
    service_spec,
)
from identity.keys import ensure_keypair
from messaging import topology

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_BROKER = "amqp://guest:guest@127.0.0.1:5672/%2F"
READY_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class Postgres:
    """A PostgreSQL server (trust authentication) on which a stack creates its databases.

    ``host``: the address the services connect to, when it is not the admin URL's.
    """

    admin_url: str = LOCAL_POSTGRES
    host: str | None = None

    def url(self, database: str) -> str:
        parts = urlsplit(self.admin_url)
        user = parts.netloc.rpartition("@")[0]
        return f"{parts.scheme}://{user}@{self.host or parts.hostname}:{parts.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def local_postgres(service: str) -> Postgres:
    """Every service's database on the local server."""
    return Postgres()


@dataclass(frozen=True)
class Staff:
    """The staff account user-notification creates at set-up (``ensure_superuser``)."""

    username: str
    password: str
    email: str


def new_run_id(tag: str) -> str:
    return f"{tag}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class StackSpec:
    """What one system differs in.

    ``run_id`` names the databases (``<run_id>_<service>``) and the broker prefix
    (``<run-id>.``); ``work_dir`` holds its keys, ``var``, ``logs`` and ``mail``.
    """

    run_id: str
    work_dir: Path
    staff: Staff
    broker_url: str = LOCAL_BROKER
    retry_delays_ms: tuple[int, ...] = (1000, 5000, 30000)
    # The server each service's database is created on, by service name.
    database_server: Callable[[str], Postgres] = local_postgres
    env: Mapping[str, str] = field(default_factory=dict)  # more settings, for every service
    service_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # for one each
    web_workers: int = 2
    worker_processes: int = 1  # of each service's worker, side by side
    reserved_ports: frozenset[int] = frozenset()  # ports never to listen on
    # Called on every process before it first starts: it may change the command.
    adapt_process: Callable[[ManagedProcess], None] | None = None
    # Services run from another source tree (another version), by service name.
    sources: Mapping[str, Path] = field(default_factory=dict)
    # False: the broker already holds the layout (loaded from its definitions file).
    declare_broker_layout: bool = True

    @property
    def prefix(self) -> str:
        return f"{self.run_id}.".replace("_", "-")

    def database_name(self, service: str) -> str:
        return f"{self.run_id}_{service}".replace("-", "_")


NO_ABUSE_LIMITS = {
    "THROTTLE_ORDERS_PER_USER": "off",
    "THROTTLE_LOGIN_FAILURES_PER_USERNAME": "off",
    "THROTTLE_LOGIN_FAILURES_PER_ADDRESS": "off",
    "THROTTLE_REGISTRATIONS_PER_ADDRESS": "off",
}


class Stack:
    """One system built from a :class:`StackSpec`: :meth:`start`, :meth:`stop`, :meth:`remove`."""

    def __init__(self, spec: StackSpec) -> None:
        self.spec = spec
        self.database_urls = {
            s.name: spec.database_server(s.name).url(spec.database_name(s.name)) for s in SERVICES
        }
        keys = spec.work_dir / "keys"
        # Held from now until stop(): no other program takes a port while the databases are
        # migrated, nor while a killed server is started again (``hold_port``).
        self.port_holds = {s.name: hold_port(spec.reserved_ports) for s in (*SERVICES, GATEWAY)}
        self.private_key, self.public_key = keys / "jwt_private.pem", keys / "jwt_public.pem"
        self.system = LocalSystem(
            env={
                "AMQP_URL": spec.broker_url,
                "MESSAGING_PREFIX": spec.prefix,
                "MESSAGING_RETRY_DELAYS_MS": ",".join(str(d) for d in spec.retry_delays_ms),
                "JWT_PRIVATE_KEY_FILE": str(self.private_key),
                "JWT_PUBLIC_KEY_FILE": str(self.public_key),
                "VAR_DIR": str(spec.work_dir / "var"),
                "DJANGO_SUPERUSER_USERNAME": spec.staff.username,
                "DJANGO_SUPERUSER_EMAIL": spec.staff.email,
                "DJANGO_SUPERUSER_PASSWORD": spec.staff.password,
                "LOG_LEVEL": "INFO",
                "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
                "EMAIL_FILE_PATH": str(spec.work_dir / "mail"),
                # one checkout, one release: the newest version of every event
                VERSIONS_ENV: ONE_RELEASE_VERSIONS,
                # Tests, benchmarks and fault scenarios place orders and register accounts far
                # faster than anyone would, all from one address: no abuse limits, said here
                # (a spec's env may set one). The counts' store is private to the run.
                **NO_ABUSE_LIMITS,
                "CACHE_URL": "",
                **spec.env,
            },
            service_env={
                name: {"DATABASE_URL": url, **spec.service_env.get(name, {})}
                for name, url in self.database_urls.items()
            },
            ports={name: int(sock.getsockname()[1]) for name, sock in self.port_holds.items()},
            web_workers=spec.web_workers,
            worker_processes=spec.worker_processes,
            log_dir=spec.work_dir / "logs",
            sources=dict(spec.sources),
            declare_broker_layout=spec.declare_broker_layout,
        )

    @property
    def run_id(self) -> str:
        return self.spec.run_id

    @property
    def prefix(self) -> str:
        return self.spec.prefix

    @property
    def work_dir(self) -> Path:
        return self.spec.work_dir

    def url(self, name: str) -> str:
        return self.system.url(name)

    def manage(self, service: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.system.manage(service_spec(service), *args)

    def start(self) -> None:
        """Create the key pair and the databases, migrate, start every process and wait until
        every web server answers."""
        ensure_keypair(self.private_key, self.public_key)
        for service in SERVICES:
            server = self.spec.database_server(service.name)
            server.create_database(self.spec.database_name(service.name))
        self.system.prepare(side_by_side=True)
        self.system.build_processes()
        if self.spec.adapt_process is not None:
            for managed in self.system.processes:
                self.spec.adapt_process(managed)
        self.system.start()
        self.system.wait_ready(timeout=READY_TIMEOUT_SECONDS)

    def stop(self) -> None:
        self.system.stop()
        for sock in self.port_holds.values():
            sock.close()

    def remove(self) -> None:
        """Drop the databases and delete the broker objects; what is already gone is skipped,
        and a server that does not answer leaves its part behind."""
        for service in SERVICES:
            with contextlib.suppress(psycopg.Error):
                server = self.spec.database_server(service.name)
                server.drop_database(self.spec.database_name(service.name))
        with contextlib.suppress(Exception):  # pika raises several unrelated types
            delete_broker_objects(self.spec.broker_url, self.prefix, self.spec.retry_delays_ms)


@contextlib.contextmanager
def running(spec: StackSpec, *, keep: bool = False) -> Iterator[Stack]:
    """A started :class:`Stack`, stopped afterwards and removed unless ``keep``."""
    stack = Stack(spec)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        if not keep:
            stack.remove()


def delete_broker_objects(url: str, prefix: str, retry_delays_ms: tuple[int, ...]) -> None:
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = 5
    connection = pika.BlockingConnection(params)
    try:
        topology.delete_all(connection.channel(), topology.Names(prefix), retry_delays_ms)
    finally:
        with contextlib.suppress(Exception):
            connection.close()
