#!/usr/bin/env python
"""Container health checks with nothing but the standard library (no curl, no pgrep).

    probe http URL             healthy when the URL answers HTTP at all (any status code)
    probe connected amqp [database]
                               healthy when this container holds an established TCP
                               connection to the broker (AMQP_URL) [and the database
                               (DATABASE_URL)]

A worker's only job is to keep its connections and work through them: a consumer that has
lost the broker, or a relay that has lost its database, is retrying with back-off and does
nothing useful. The worker is the only process in its container, so any established socket in
the container's network namespace (``/proc/net/tcp*``) to the dependency's port is the
worker's. Replace these with the services' own readiness endpoints once they exist.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

ESTABLISHED = "01"
DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671, "postgres": 5432, "postgresql": 5432}
TARGETS = {"amqp": "AMQP_URL", "database": "DATABASE_URL"}


def answers_http(url: str, timeout: float = 3.0) -> bool:
    try:
        urllib.request.urlopen(url, timeout=timeout).close()  # noqa: S310 - a local URL we pass
    except urllib.error.HTTPError:
        return True  # an HTTP error status is still an answer: the server is up
    except (urllib.error.URLError, OSError):
        return False
    return True


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
        print(f"no HTTP answer from {argv[1]}", file=sys.stderr)
        return 1
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
