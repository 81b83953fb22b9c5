"""The system under test: :mod:`devstack.stack` with production settings.

Each service gets its own new database, a private broker prefix, free ports and its own key
pair (as in the end-to-end tests); debug is off, web servers are gunicorn sync workers,
database connections persist (``CONN_MAX_AGE=None``), retries wait as long as in production.
Everything is removed afterwards unless asked to keep it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pika

from devstack import stack
from messaging import topology

# bench.history imports these names from every commit it measures: keep them.
BROKER_URL = stack.LOCAL_BROKER
STAFF_USERNAME = "bench-staff"
STAFF_PASSWORD = "bench-staff-password-5"  # noqa: S105 - a throwaway local account
run_id_for = stack.new_run_id


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


@contextlib.contextmanager
def running_system(
    work_dir: Path, run_id: str, *, web_workers: int, keep: bool = False
) -> Iterator[stack.Stack]:
    """Create databases, prepare and start every process; stop and remove it all afterwards."""
    spec = stack.StackSpec(
        run_id=run_id,
        work_dir=work_dir,
        staff=stack.Staff(STAFF_USERNAME, STAFF_PASSWORD, "bench-staff@example.test"),
        env={
            "DJANGO_DEBUG": "0",
            "JWT_ACCESS_TOKEN_LIFETIME_SECONDS": "21600",
            # the backlog scenario holds orders PENDING for minutes: never let them expire
            "ORDER_PENDING_DEADLINE_SECONDS": "86400",
            # one user places every order as fast as it can: no abuse limit may slow it down
            **stack.NO_ABUSE_LIMITS,
        },
        web_workers=web_workers,
    )
    with stack.running(spec, keep=keep) as running:
        yield running
