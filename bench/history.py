"""What each change bought: the same short closed loop, run at several commits, one after another.

``python -m bench.history [--seconds 20] [--rounds 2] COMMIT [COMMIT ...]`` checks each commit
out in a temporary git worktree and measures it with that commit's own code (services, libs and
the ``bench`` modules it already had): the whole system on fresh PostgreSQL databases as in
``make bench``, 40 customers, 200 SKUs, then

* sequential: ``--sequential`` orders one at a time (POST → response, POST → outcome event:
  the latency of one order on an idle system);
* closed loop: ``--rounds`` runs of scenario (a) for ``--seconds`` each with ``--clients``
  customers (final orders per second, POST → final p50, cores used, database work per order,
  and the CPU per order of each process group: web and worker per service, PostgreSQL,
  RabbitMQ, the load generator, from /proc over the whole round);
* drain: with ``--drain N``, N orders accepted while inventory's worker is stopped, then that
  worker started again, as in scenario (d): the drain rate (final orders per second from the
  restart, and from the first final order after it, which leaves the worker's start-up out)
  and the CPU per order of each process group while it drains.

One JSON line per commit goes to stdout (and ``--output``), and a Markdown table at the end.
Run it on a quiet machine: the commits are measured one after the other, not side by side.
This file is run twice: as the driver, and (``--measure``) inside each worktree.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CUSTOMERS = 40
SKUS = 200
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def _process_group(pid: str) -> str | None:
    """Which part of the machine's work a process does: a service's web or worker process,
    PostgreSQL, RabbitMQ or this load generator (None: anything else)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    line = b" ".join(argv).decode(errors="replace")
    if line.startswith("postgres"):
        return "postgresql"
    if "beam.smp" in line:
        return "rabbitmq"
    if int(pid) == os.getpid():
        return "load generator"
    if "devstack.gateway" in line:
        return "gateway"
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))  # a service runs in services/<name>
    except OSError:
        return None
    if cwd.parent.name == "services":
        return f"{cwd.name} {'web' if 'gunicorn' in line else 'worker'}"
    return None


def cpu_by_process_group() -> dict[str, float]:
    """CPU seconds used so far (user + system), summed per :func:`_process_group`."""
    used: dict[str, float] = {}
    for pid in (name for name in os.listdir("/proc") if name.isdigit()):
        group = _process_group(pid)
        if group is None:
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds = (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND
        used[group] = used.get(group, 0.0) + seconds
    return used


def cpu_ms_per_order(
    before: dict[str, float], after: dict[str, float], orders: int
) -> dict[str, float]:
    """Each group's CPU between two :func:`cpu_by_process_group` readings, in ms per order
    (a process that started or ended in between counts only what it used while seen)."""
    per_order = {
        group: round((after[group] - before.get(group, 0.0)) * 1000 / max(orders, 1), 2)
        for group in sorted(after)
    }
    per_order["total"] = round(sum(per_order.values()), 2)
    return per_order


def _measure(args: argparse.Namespace) -> None:
    """Inside a worktree: ``bench`` and the services are the commit's own."""
    import asyncio
    import dataclasses
    import random
    import time

    import psycopg

    from bench import run as bench_run
    from bench.client import Client
    from bench.config import BenchConfig
    from bench.listener import OutcomeListener
    from bench.scenarios import Bench, _wait_until_zero, run_closed, unsent_outbox_rows
    from bench.system import (
        BROKER_URL,
        STAFF_PASSWORD,
        STAFF_USERNAME,
        run_id_for,
        running_system,
    )

    config = BenchConfig(
        customers=CUSTOMERS,
        skus=SKUS,
        clients=args.clients,
        closed_seconds=args.seconds,
        warmup_seconds=2.0,
        progress=False,
    )

    async def drive(rs: Any, listener: OutcomeListener) -> dict[str, Any]:
        urls = {name: rs.url(name) for name in ("inventory", "orders", "user-notification")}
        async with Client(urls) as client:
            staff = await client.token(STAFF_USERNAME, STAFF_PASSWORD)
            customers = await bench_run._bounded(
                8, [client.register(f"history-{i}") for i in range(config.customers)]
            )
            products, flash, _ = await bench_run._seed(config, client, staff, rs.run_id)
            await bench_run._wait_for_replica(rs.database_urls["orders"], [*products, flash])
            listener.attach(asyncio.get_running_loop())
            rng = random.Random(1)
            bench = Bench(config, client, listener, rs, customers, products, flash, rng)

            def placed() -> int:
                with psycopg.connect(rs.database_urls["orders"]) as connection:
                    row = connection.execute("SELECT count(*) FROM orders_order").fetchone()
                    return int(row[0]) if row else 0

            posts, finals = [], []
            for _ in range(args.sequential):
                post = await client.place_order(customers[0], bench.random_lines())
                assert post.order_id is not None, post
                await listener.wait(post.order_id, 30)
                posts.append((post.answered - post.started) * 1000)
                finals.append((time.monotonic() - post.started) * 1000)
            rounds = []
            for index in range(args.rounds):
                bench.config = dataclasses.replace(config)
                placed_before, cpu_before = placed(), cpu_by_process_group()
                outcome = await run_closed(bench, f"a{index}")
                cpu_after, placed_after = cpu_by_process_group(), placed()
                rounds.append(
                    {
                        "final_orders_per_second": outcome["final_orders_per_second"],
                        "p50_ms": outcome["latency_ms"]["p50"],
                        "cores_used": outcome["cpu"]["system_cores_used"],
                        # Warm-up and the last orders' tails included: the same in every run.
                        "cpu_ms_per_order": cpu_ms_per_order(
                            cpu_before, cpu_after, placed_after - placed_before
                        ),
                        "commits_per_order": {
                            service: figures["xact_commit"]
                            for service, figures in outcome["database_work_per_order"].items()
                        },
                    }
                )
            drained = await drain(bench, listener, args.drain) if args.drain else None
            listener.detach()
            return {
                "sequential_post_ms_p50": round(sorted(posts)[len(posts) // 2], 2),
                "sequential_final_ms_p50": round(sorted(finals)[len(finals) // 2], 2),
                "rounds": rounds,
                **({"drain": drained} if drained else {}),
            }

    async def drain(bench: Bench, listener: OutcomeListener, orders: int) -> dict[str, Any]:
        """Scenario (d)'s backlog, with the CPU read from the restart to the last final order:
        ``run_backlog`` (the commit's own, perhaps an old one) gives no hook inside it."""
        workers = rs.system.workers_of("inventory")
        for worker in workers:
            worker.stop()
        left = [orders]
        ids: list[str] = []

        async def poster(index: int) -> None:
            while left[0] > 0:
                left[0] -= 1
                post = await bench.client.place_order(bench.customer(index), bench.random_lines())
                assert post.order_id is not None, post
                ids.append(post.order_id)

        await asyncio.gather(*(poster(i) for i in range(config.clients)))
        # Every order.created published (by its writer or the relay): the queue holds them all.
        orders_db = rs.database_urls["orders"]
        await _wait_until_zero(lambda: unsent_outbox_rows(orders_db), 60.0, "the orders outbox")
        cpu_before, restarted = cpu_by_process_group(), time.monotonic()
        for worker in workers:
            worker.start()
        missing = await listener.wait_all(ids, 60.0, poll=0.05)
        cpu_after = cpu_by_process_group()
        assert not missing, f"{len(missing)} orders never became final"
        finals = sorted(listener.outcomes[order_id].at for order_id in ids)
        return {
            "orders": orders,
            "per_second": round(orders / (finals[-1] - restarted), 1),
            "per_second_from_first_final": round((orders - 1) / (finals[-1] - finals[0]), 1),
            "first_final_s": round(finals[0] - restarted, 2),
            "cpu_ms_per_order": cpu_ms_per_order(cpu_before, cpu_after, orders),
        }

    run_id = run_id_for("history")
    work = Path(tempfile.mkdtemp(prefix=f"{run_id}-"))
    with running_system(work, run_id, web_workers=2) as rs:
        listener = OutcomeListener(BROKER_URL, rs.prefix)
        listener.start()
        try:
            print(json.dumps(asyncio.run(drive(rs, listener))), flush=True)
        finally:
            listener.stop()


def _run(commit: str, args: argparse.Namespace, repo: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), commit],
            check=True,
            capture_output=True,
        )
        try:
            env = {**os.environ, "PYTHONPATH": f"{tree / 'libs'}{os.pathsep}{tree}"}
            # This file (the driver's version) runs inside the worktree, with the commit's own
            # packages first on the path.
            script = f"import runpy; runpy.run_path({str(Path(__file__))!r}, run_name='__main__')"
            argv = [sys.executable, "-c", script, "--measure", *_passed(args)]
            result = subprocess.run(
                argv, cwd=tree, env=env, capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                raise RuntimeError(f"{commit}: {result.stderr[-3000:]}")
            measured: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
        finally:
            subprocess.run(
                ["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)],
                check=False,
                capture_output=True,
            )
    subject = subprocess.run(
        ["git", "-C", str(repo), "log", "-1", "--format=%h %s", commit],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {"commit": subject, **measured, "load_average": list(os.getloadavg())}


def _passed(args: argparse.Namespace) -> list[str]:
    return [
        f"--seconds={args.seconds}",
        f"--rounds={args.rounds}",
        f"--clients={args.clients}",
        f"--sequential={args.sequential}",
        f"--drain={args.drain}",
    ]


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| commit | final orders/s (each round) | POST → final p50 ms | cores used | "
        "CPU ms per order, all processes | one order alone: POST / final ms |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    drains = [row for row in rows if row.get("drain")]
    if drains:
        lines[0] += " drained per s (from the first final) | CPU ms per order draining |"
        lines[1] += "--:|--:|"
    for row in rows:
        rounds = row["rounds"]

        def each(key: str, rounds: list[dict[str, Any]] = rounds) -> str:
            return ", ".join(str(r[key]) for r in rounds)

        lines.append(
            f"| {row['commit'][:90]} | {each('final_orders_per_second')} | {each('p50_ms')}"
            f" | {each('cores_used')}"
            f" | {', '.join(str(r.get('cpu_ms_per_order', {}).get('total', '-')) for r in rounds)}"
            f" | {row['sequential_post_ms_p50']} / {row['sequential_final_ms_p50']} |"
        )
        if drains:
            drained = row.get("drain") or {}
            lines[-1] += (
                f" {drained.get('per_second', '-')}"
                f" ({drained.get('per_second_from_first_final', '-')})"
                f" | {drained.get('cpu_ms_per_order', {}).get('total', '-')} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("commits", nargs="*")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--sequential", type=int, default=40)
    parser.add_argument("--drain", type=int, default=0, help="orders in a backlog to drain")
    parser.add_argument("--output", type=Path, help="also append the JSON lines to this file")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        _measure(args)
        return 0
    if not args.commits:
        parser.error("name at least one commit")
    repo = Path(__file__).resolve().parents[1]
    rows = []
    for commit in args.commits:
        row = _run(commit, args, repo)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.output:
            with args.output.open("a") as out:
                out.write(json.dumps(row) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
