"""What the run ran on: machine, versions, server settings, and how busy the machine was."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pika
import psycopg

from bench.system import BROKER_URL
from devstack.stack import LOCAL_POSTGRES

PACKAGES = ("Django", "djangorestframework", "gunicorn", "psycopg", "pika", "aiohttp")
POSTGRES_SETTINGS = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "wal_sync_method",
    "shared_buffers",
    "max_connections",
)


def _meminfo() -> dict[str, int]:
    values: dict[str, int] = {}
    with contextlib.suppress(OSError), open("/proc/meminfo") as meminfo:
        for line in meminfo:
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                values[key] = int(parts[0])  # kB
    return values


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    memory = _meminfo()
    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_total_gib": round(memory.get("MemTotal", 0) / 1024 / 1024, 1),
        "memory_available_gib": round(memory.get("MemAvailable", 0) / 1024 / 1024, 1),
        "kernel": platform.release(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def rabbitmq_version() -> str:
    with contextlib.suppress(Exception):
        connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
        try:
            properties = connection._impl.server_properties
            version = properties.get("version", b"")
            return version.decode() if isinstance(version, bytes) else str(version)
        finally:
            connection.close()
    with contextlib.suppress(Exception):
        result = subprocess.run(
            ["rabbitmqctl", "version"], capture_output=True, text=True, timeout=20, check=False
        )
        if result.returncode == 0:
            return result.stdout.strip()
    return "unknown"


def versions() -> dict[str, Any]:
    found: dict[str, Any] = {"python": sys.version.split()[0]}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    with psycopg.connect(LOCAL_POSTGRES) as connection:
        found["postgresql"] = connection.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    found["rabbitmq"] = rabbitmq_version()
    return found


def postgres_settings() -> dict[str, str]:
    settings: dict[str, str] = {}
    with psycopg.connect(LOCAL_POSTGRES) as connection:
        for name in POSTGRES_SETTINGS:
            row = connection.execute(f"SHOW {name}").fetchone()
            settings[name] = str(row[0]) if row else ""
    return settings


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


def schedstat(pid: int) -> tuple[int, int]:
    """(ns on a CPU, ns runnable but waiting for a CPU) summed over a process's threads."""
    running = waiting = 0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            fields = (task / "schedstat").read_text().split()
        except OSError:
            continue
        running += int(fields[0])
        waiting += int(fields[1])
    return running, waiting


def process_tree(pids: Iterable[int]) -> list[int]:
    """The given processes and all their descendants (gunicorn's workers, for instance)."""
    found: list[int] = []
    pending = list(pids)
    while pending:
        pid = pending.pop()
        found.append(pid)
        with contextlib.suppress(OSError):
            pending += [
                int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            ]
    return found


@dataclass
class CpuWindow:
    """How busy the machine, this process and the system under test were in a window.

    ``system`` gives the pids of the system under test: their scheduler statistics say how
    many cores they used and how often they were ready to run but found both cores taken
    (the clearest sign that other work on the machine slowed them down).
    """

    system: Callable[[], list[int]] | None = None
    started: float = 0.0
    busy0: int = 0
    total0: int = 0
    own0: float = 0.0
    sched0: dict[int, tuple[int, int]] = field(default_factory=dict)

    def _sched(self) -> dict[int, tuple[int, int]]:
        if self.system is None:
            return {}
        return {pid: schedstat(pid) for pid in process_tree(self.system())}

    def start(self) -> CpuWindow:
        self.started = time.monotonic()
        self.busy0, self.total0 = _cpu_jiffies()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.own0 = usage.ru_utime + usage.ru_stime
        self.sched0 = self._sched()
        return self

    def stop(self) -> dict[str, float]:
        busy, total = _cpu_jiffies()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        elapsed = max(time.monotonic() - self.started, 1e-9)
        cores = os.cpu_count() or 1
        figures = {
            "machine_busy_percent": round(
                100 * (busy - self.busy0) / max(total - self.total0, 1), 1
            ),
            "load_generator_cpu_percent_of_machine": round(
                100 * (usage.ru_utime + usage.ru_stime - self.own0) / elapsed / cores, 1
            ),
        }
        if self.system is not None:
            after = self._sched()
            both = [pid for pid in after if pid in self.sched0]
            running = sum(after[p][0] - self.sched0[p][0] for p in both) / 1e9
            waiting = sum(after[p][1] - self.sched0[p][1] for p in both) / 1e9
            figures["system_cores_used"] = round(running / elapsed, 2)
            figures["system_threads_waiting_for_cpu"] = round(waiting / elapsed, 2)
        return figures
