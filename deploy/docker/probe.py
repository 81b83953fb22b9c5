#!/usr/bin/env python
"""Container health checks with nothing but the standard library (no curl, no pgrep).

    probe http URL             healthy when the URL answers with a 2xx status: the web
                               servers' /health/live and /health/ready (503 when a
                               dependency is down)
    probe heartbeat [MAX_AGE]  healthy when the worker beat within MAX_AGE seconds (30):
                               the file WORKER_HEARTBEAT_FILE, touched every few seconds
                               while every job of the worker is connected and working
    probe connected amqp [database]
                               healthy when this container holds an established TCP
                               connection to the broker (AMQP_URL) [and the database
                               (DATABASE_URL)]

A worker one of whose jobs has lost the broker or its database retries with back-off and stops
beating, so its heartbeat says whether it is ready (``manage.py worker_health`` reads the same
file). ``connected`` says less (a worker waiting for its database still holds the broker
connection), which suits a liveness check: restarting a worker does not bring its database back.
The worker is the only process in its container, so any established socket in the container's
network namespace (``/proc/net/tcp*``) to the dependency's port is the worker's.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

ESTABLISHED = "01"
DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671, "postgres": 5432, "postgresql": 5432}
TARGETS = {"amqp": "AMQP_URL", "database": "DATABASE_URL"}
HEARTBEAT_ENV = "WORKER_HEARTBEAT_FILE"
DEFAULT_MAX_AGE_SECONDS = 30.0


def answers_http(url: str, timeout: float = 3.0) -> bool:
    """Whether ``url`` answers 2xx (urllib raises for the rest, redirects aside)."""
    try:
        urllib.request.urlopen(url, timeout=timeout).close()  # noqa: S310 - a local URL we pass
    except (urllib.error.URLError, OSError):  # HTTPError (a 503, say) is a URLError
        return False
    return True


def heartbeat_problem(path: str, max_age: float, now: float | None = None) -> str | None:
    """Why the heartbeat in ``path`` does not show a ready worker, or None when it does."""
    if not path:
        return f"{HEARTBEAT_ENV} is not set"
    try:
        age = (time.time() if now is None else now) - os.stat(path).st_mtime
    except FileNotFoundError:
        return f"no heartbeat at {path}"
    if age > max_age:
        return f"last heartbeat {age:.0f}s ago (more than {max_age:g}s)"
    return None


def port_of(url: str) -> int:
    parts = urlsplit(url)
    if parts.port:
        return parts.port
    try:
        return DEFAULT_PORTS[parts.scheme]
    except KeyError:
        raise ValueError(f"no port in {url!r} and no default for {parts.scheme!r}") from None


def established_remote_ports(tables: Iterable[str]) -> set[int]:
    """Remote ports of ESTABLISHED sockets in ``/proc/net/tcp``-formatted tables."""
    ports = set()
    for table in tables:
        for line in table.splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[3] == ESTABLISHED:
                ports.add(int(fields[2].rsplit(":", 1)[1], 16))
    return ports


def read_tables(proc: Path = Path("/proc/net")) -> list[str]:
    return [path.read_text() for path in (proc / "tcp", proc / "tcp6") if path.exists()]


def missing_connections(targets: list[str], env: dict[str, str], ports: set[int]) -> list[str]:
    missing = []
    for target in targets:
        variable = TARGETS[target]
        url = env.get(variable, "")
        if not url:
            missing.append(f"{variable} is not set")
        elif port_of(url) not in ports:
            missing.append(f"no connection to {target} (port {port_of(url)})")
    return missing


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "http":
        if answers_http(argv[1]):
            return 0
        print(f"no 2xx answer from {argv[1]}", file=sys.stderr)
        return 1
    if argv[:1] == ["heartbeat"] and len(argv) <= 2:
        max_age = float(argv[1]) if len(argv) == 2 else DEFAULT_MAX_AGE_SECONDS
        problem = heartbeat_problem(os.environ.get(HEARTBEAT_ENV, ""), max_age)
        if problem:
            print(problem, file=sys.stderr)
            return 1
        return 0
    if len(argv) >= 2 and argv[0] == "connected" and set(argv[1:]) <= set(TARGETS):
        problems = missing_connections(
            argv[1:], dict(os.environ), established_remote_ports(read_tables())
        )
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
