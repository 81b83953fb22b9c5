"""The system under test: every service's processes on fresh PostgreSQL databases.

The pattern of ``tests/e2e/harness.py`` with production settings: each service gets its own
new database, a private broker prefix, free ports and its own key pair; debug is off, web
servers are gunicorn sync workers, database connections persist (``CONN_MAX_AGE=None``).
Everything is removed afterwards unless asked to keep it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pika
import psycopg
from psycopg import sql

from devstack.system import (
    BROKER_LAYOUT_COMMAND,
    GATEWAY,
    SERVICES,
    LocalSystem,
    ServiceSpec,
    free_port,
)
from identity.keys import ensure_keypair
from messaging import topology

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
STAFF_USERNAME = "bench-staff"
STAFF_PASSWORD = "bench-staff-password-5"  # noqa: S105 - a throwaway local account
RETRY_DELAYS_MS = (1000, 5000, 30000)  # the production default


def database_url(name: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def create_database(name: str) -> str:
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(name)


def drop_database(name: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def delete_broker_objects(prefix: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
    topology.delete_all(connection.channel(), topology.Names(prefix), RETRY_DELAYS_MS)
    connection.close()


def queue_depth(prefix: str, service: str) -> int:
    """Messages ready in a service's queue (a passive declare: never creates it)."""
    connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
    try:
        frame = connection.channel().queue_declare(
            topology.Names(prefix).queue(service), passive=True
        )
        return int(frame.method.message_count)
    finally:
        connection.close()


def prepare(system: LocalSystem) -> None:
    """``LocalSystem.prepare`` with the services' migrations run side by side (faster)."""

    def run(service: ServiceSpec, *commands: tuple[str, ...]) -> None:
        for command in commands:
            result = system.manage(service, *command)
            if result.returncode != 0:
                raise RuntimeError(
                    f"{service.name}: manage.py {' '.join(command)} failed:\n"
                    f"{result.stdout}{result.stderr}"
                )

    run(SERVICES[0], BROKER_LAYOUT_COMMAND)
    with ThreadPoolExecutor(len(SERVICES)) as pool:
        futures = [
            pool.submit(run, service, ("migrate", "--noinput"), *service.setup)
            for service in SERVICES
        ]
        for future in futures:
            future.result()


@dataclass
class RunningSystem:
    system: LocalSystem
    run_id: str
    prefix: str
    database_urls: dict[str, str]  # service name -> URL
    work_dir: Path

    def url(self, service: str) -> str:
        return self.system.url(service)

    def spec(self, service: str) -> ServiceSpec:
        return next(s for s in SERVICES if s.name == service)


def run_id_for(tag: str = "bench") -> str:
    return f"{tag}_{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def running_system(
    work_dir: Path, run_id: str, *, web_workers: int, keep: bool = False
) -> Iterator[RunningSystem]:
    """Create databases, prepare and start every process; stop and remove it all afterwards."""
    prefix = f"{run_id.replace('_', '-')}."
    keys = work_dir / "keys"
    ensure_keypair(keys / "jwt_private.pem", keys / "jwt_public.pem")
    names = {s.name: f"{run_id}_{s.name.replace('-', '_')}" for s in SERVICES}
    urls: dict[str, str] = {}
    try:
        for service, name in names.items():
            urls[service] = create_database(name)
        system = LocalSystem(
            env={
                "DJANGO_DEBUG": "0",
                "AMQP_URL": BROKER_URL,
                "MESSAGING_PREFIX": prefix,
                "MESSAGING_RETRY_DELAYS_MS": ",".join(str(d) for d in RETRY_DELAYS_MS),
                "JWT_PRIVATE_KEY_FILE": str(keys / "jwt_private.pem"),
                "JWT_PUBLIC_KEY_FILE": str(keys / "jwt_public.pem"),
                "JWT_ACCESS_TOKEN_LIFETIME_SECONDS": "21600",
                "VAR_DIR": str(work_dir / "var"),
                "DJANGO_SUPERUSER_USERNAME": STAFF_USERNAME,
                "DJANGO_SUPERUSER_EMAIL": "bench-staff@example.test",
                "DJANGO_SUPERUSER_PASSWORD": STAFF_PASSWORD,
                # the backlog scenario holds orders PENDING for minutes: never let them expire
                "ORDER_PENDING_DEADLINE_SECONDS": "86400",
                "LOG_LEVEL": "INFO",
                # the e-mail worker delivers every notification to a file, as in the e2e tests
                "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
                "EMAIL_FILE_PATH": str(work_dir / "mail"),
            },
            service_env={name: {"DATABASE_URL": url} for name, url in urls.items()},
            ports={service.name: free_port() for service in (*SERVICES, GATEWAY)},
            web_workers=web_workers,
            log_dir=work_dir / "logs",
        )
        prepare(system)
        system.start()
        try:
            system.wait_ready(timeout=120)
            yield RunningSystem(system, run_id, prefix, urls, work_dir)
        finally:
            system.stop()
    finally:
        if not keep:
            with contextlib.suppress(Exception):
                delete_broker_objects(prefix)
            for name in names.values():
                drop_database(name)
