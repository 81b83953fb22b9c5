"""The two baselines measured in the same run, so ratios survive a noisy machine.

* ``drf_insert``: a bare DRF endpoint (``bench/baseline``) that validates a JSON body and
  inserts one row into PostgreSQL, served by gunicorn exactly as the services are (same
  worker class and count, persistent connections, no debug), driven by the same asyncio
  client with the same number of concurrent clients for the same duration: requests/s.
* ``pgbench``: PostgreSQL's own single-row update rate (``UPDATE … WHERE aid = :id``, one
  transaction each, ``-c 4``) on a scratch database: transactions/s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from bench.config import BenchConfig
from bench.machine import CpuWindow
from bench.stats import summary_ms
from devstack.stack import Postgres
from devstack.system import LocalSystem, free_port

BASELINE_DIR = Path(__file__).resolve().parent / "baseline"
PGBENCH_SCRIPT = "\\set id random(1, 100000 * :scale)\n" \
    "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :id;\n"  # fmt: skip
SERVICE_APP = "config.wsgi:application"
BASELINE_APP = "baseline_site.wsgi:application"
TPS = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")


def gunicorn_argv(port: int, workers: int) -> list[str]:
    """The orders service's own gunicorn command (from ``LocalSystem``), serving the baseline.

    Taken from the runner rather than copied, so the baseline keeps the services' server
    settings (worker class and count, config module, access log) whenever they change.
    """
    system = LocalSystem(ports={"orders": port}, web_workers=workers)
    system.build_processes()
    argv = list(system.find("orders", "web").argv)
    argv[argv.index(SERVICE_APP)] = BASELINE_APP
    return argv


def _wait_http(url: str, process: subprocess.Popen[Any], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the baseline server exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 - our own localhost URL
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer (405 for GET) means it is up
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the baseline server did not answer at {url}") from None
            time.sleep(0.2)


async def _drive(url: str, clients: int, seconds: float, progress: bool) -> dict[str, Any]:
    """``clients`` loops posting as soon as the previous answer came, for ``seconds``."""
    from tqdm import tqdm

    body = '{"lines": [{"product_id": 1, "quantity": 2}, {"product_id": 7, "quantity": 1}]}'
    headers = {"Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    start = time.monotonic()
    stop_at = start + seconds
    bar = tqdm(desc="baseline: bare DRF insert", unit="req", disable=not progress, mininterval=0.5)
    connector = aiohttp.TCPConnector(limit=512, force_close=True)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    ) as session:

        async def loop() -> None:
            nonlocal errors
            while time.monotonic() < stop_at:
                began = time.monotonic()
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        ok = response.status == 201
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                if ok and time.monotonic() <= stop_at:
                    latencies.append(time.monotonic() - began)
                    bar.update(1)
                elif not ok:
                    errors += 1

        await asyncio.gather(*(loop() for _ in range(clients)))
    bar.close()
    elapsed = min(time.monotonic(), stop_at) - start
    return {
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 2),
        "latency_ms": summary_ms(latencies),
    }


def drf_insert(config: BenchConfig, run_id: str, log_dir: Path) -> dict[str, Any]:
    """Migrate a scratch database, serve the baseline app, drive it, tear it all down."""
    name = f"{run_id}_baseline"
    url = Postgres().create_database(name)
    env = {**os.environ, "DATABASE_URL": url, "PYTHONUNBUFFERED": "1", "SERVICE_NAME": "baseline"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=BASELINE_DIR,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        port = free_port()
        log_dir.mkdir(parents=True, exist_ok=True)
        with (log_dir / "baseline.web.log").open("a") as log:
            process = subprocess.Popen(
                gunicorn_argv(port, config.web_workers),
                cwd=BASELINE_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                endpoint = f"http://127.0.0.1:{port}/api/rows/"
                _wait_http(endpoint, process)
                cpu = CpuWindow(lambda: [process.pid]).start()
                result = asyncio.run(
                    _drive(endpoint, config.clients, config.baseline_duration, config.progress)
                )
                result["cpu"] = cpu.stop()
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(5)
        result["clients"] = config.clients
        result["web_workers"] = config.web_workers
        return result
    finally:
        Postgres().drop_database(name)


def pgbench(config: BenchConfig, run_id: str) -> dict[str, Any]:
    """``pgbench -i`` on a scratch database, then single-row updates with ``-c`` clients."""
    name = f"{run_id}_pgbench"
    Postgres().create_database(name)
    connection = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]
    try:
        subprocess.run(
            ["pgbench", "-i", "-q", "-s", "1", *connection, name],
            check=True,
            capture_output=True,
            text=True,
        )
        with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
            script.write(PGBENCH_SCRIPT)
        try:
            command = [
                "pgbench", "-n",
                "-c", str(config.pgbench_clients),
                "-j", str(min(config.pgbench_clients, os.cpu_count() or 1)),
                "-T", str(config.pgbench_seconds),
                "-f", script.name,
                *connection, name,
            ]  # fmt: skip
            result = subprocess.run(command, check=True, capture_output=True, text=True)
        finally:
            os.unlink(script.name)
        match = TPS.search(result.stdout)
        if match is None:
            raise RuntimeError(f"no tps in pgbench's output:\n{result.stdout}{result.stderr}")
        return {
            "tps": round(float(match.group(1)), 1),
            "clients": config.pgbench_clients,
            "seconds": config.pgbench_seconds,
            "command": " ".join(command[: -len(connection) - 1]) + " <db>",
            "script": PGBENCH_SCRIPT.strip().replace("\n", " "),
        }
    finally:
        Postgres().drop_database(name)
