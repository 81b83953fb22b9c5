"""Running the whole system for end-to-end tests: private databases, broker names and ports."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pika

from devstack import stack
from devstack.system import LocalSystem

BROKER_URL = stack.LOCAL_BROKER
STAFF_USERNAME = "e2e-staff"
STAFF_PASSWORD = "e2e-staff-password-81"
RETRY_DELAYS_MS = (200, 500)
WORKER_PROCESSES = 2  # of each service


def queue_depth(queue: str) -> int:
    """The messages ready in ``queue`` of the local broker (an unknown queue is an error)."""
    connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


@contextmanager
def running_system(work_dir: Path) -> Iterator[tuple[LocalSystem, dict[str, str], str]]:
    """Start every service's processes against private databases and broker names: two worker
    processes per service, as competing consumers."""
    spec = stack.StackSpec(
        run_id=stack.new_run_id("e2e"),
        work_dir=work_dir,
        staff=stack.Staff(STAFF_USERNAME, STAFF_PASSWORD, "staff@example.test"),
        retry_delays_ms=RETRY_DELAYS_MS,
        env={"ORDER_PENDING_DEADLINE_SECONDS": "900", "ORDER_DEADLINE_SCAN_SECONDS": "1"},
        worker_processes=WORKER_PROCESSES,
    )
    with stack.running(spec) as running:
        yield running.system, running.database_urls, running.prefix
