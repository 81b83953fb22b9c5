"""Running the whole system for end-to-end tests: private databases, broker names and ports."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pika
import psycopg
from psycopg import sql

from devstack.system import GATEWAY, SERVICES, LocalSystem, free_port
from identity.keys import ensure_keypair
from messaging import topology

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
STAFF_USERNAME = "e2e-staff"
STAFF_PASSWORD = "e2e-staff-password-81"
RETRY_DELAYS_MS = (200, 500)


def database_name(run_id: str, service: str) -> str:
    return f"e2e_{run_id}_{service.replace('-', '_')}"


@contextmanager
def private_databases(run_id: str) -> Iterator[dict[str, str]]:
    """One fresh PostgreSQL database per service, dropped afterwards."""
    urls: dict[str, str] = {}
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        for service in SERVICES:
            name = database_name(run_id, service.name)
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            urls[service.name] = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        yield urls
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            for service in SERVICES:
                name = database_name(run_id, service.name)
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def delete_broker_objects(prefix: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
    topology.delete_all(connection.channel(), topology.Names(prefix), RETRY_DELAYS_MS)
    connection.close()


@contextmanager
def running_system(work_dir: Path) -> Iterator[tuple[LocalSystem, dict[str, str], str]]:
    """Start every service's processes against private databases and broker names."""
    run_id = uuid.uuid4().hex[:8]
    prefix = f"e2e-{run_id}."
    keys = work_dir / "keys"
    ensure_keypair(keys / "jwt_private.pem", keys / "jwt_public.pem")
    with private_databases(run_id) as database_urls:
        system = LocalSystem(
            env={
                "AMQP_URL": BROKER_URL,
                "MESSAGING_PREFIX": prefix,
                "MESSAGING_RETRY_DELAYS_MS": ",".join(str(d) for d in RETRY_DELAYS_MS),
                "JWT_PRIVATE_KEY_FILE": str(keys / "jwt_private.pem"),
                "JWT_PUBLIC_KEY_FILE": str(keys / "jwt_public.pem"),
                "VAR_DIR": str(work_dir / "var"),
                "DJANGO_SUPERUSER_USERNAME": STAFF_USERNAME,
                "DJANGO_SUPERUSER_EMAIL": "staff@example.test",
                "DJANGO_SUPERUSER_PASSWORD": STAFF_PASSWORD,
                "ORDER_PENDING_DEADLINE_SECONDS": "900",
                "LOG_LEVEL": "INFO",
                # The e-mail worker writes each message to a file the tests can read.
                "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
                "EMAIL_FILE_PATH": str(work_dir / "mail"),
            },
            service_env={name: {"DATABASE_URL": url} for name, url in database_urls.items()},
            ports={service.name: free_port() for service in (*SERVICES, GATEWAY)},
            log_dir=work_dir / "logs",
        )
        system.prepare()
        system.start()
        try:
            system.wait_ready(timeout=60)
            yield system, database_urls, prefix
        finally:
            system.stop()
            delete_broker_objects(prefix)
