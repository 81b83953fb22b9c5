"""``python -m bench [--quick] …``: run the benchmark and write the report.

Exit status: 0 when every correctness check passed (speed targets are reported, not
enforced), 1 when one failed, 2 when the run itself broke.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench import baselines, checks, machine, profiling, report
from bench.client import Client, Customer
from bench.config import FULL, QUICK, SMOKE, BenchConfig
from bench.listener import OutcomeListener
from bench.scenarios import Bench, run_backlog, run_closed, run_flash, run_grown, run_open
from bench.system import (
    BROKER_URL,
    STAFF_PASSWORD,
    STAFF_USERNAME,
    run_id_for,
    running_system,
)
from devstack.stack import Stack

SEED_CONCURRENCY = 8
REGISTER_CONCURRENCY = 4  # password hashing is deliberately slow


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Phases:
    """Wall-clock seconds spent in each phase of the run (the QUICK budget is 2 minutes)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._current: str | None = None
        self._since = 0.0

    def begin(self, name: str, message: str) -> None:
        self.end()
        self._current, self._since = name, time.monotonic()
        log(message)

    def end(self) -> None:
        if self._current is not None:
            spent = time.monotonic() - self._since
            self.seconds[self._current] = round(self.seconds.get(self._current, 0.0) + spent, 1)
            self._current = None


async def _bounded(concurrency: int, jobs: list[Any]) -> list[Any]:
    semaphore = asyncio.Semaphore(concurrency)

    async def run(job: Any) -> Any:
        async with semaphore:
            return await job

    return list(await asyncio.gather(*(run(job) for job in jobs)))


async def _wait_for_replica(orders_db: str, product_ids: list[int], timeout: float = 120) -> float:
    """Until the orders service's replica holds every product (its own database says so)."""
    began = time.monotonic()
    while True:
        with psycopg.connect(orders_db) as connection:
            row = connection.execute(
                "SELECT count(*) FROM product_replica WHERE product_id = ANY(%s)", [product_ids]
            ).fetchone()
        if row and row[0] == len(product_ids):
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise RuntimeError(f"the orders replica has {row[0] if row else 0}/{len(product_ids)}")
        await asyncio.sleep(0.2)


async def _seed(
    config: BenchConfig, client: Client, staff: str, run_id: str
) -> tuple[list[int], int, dict[int, int]]:
    async def product(index: int, stock: int) -> tuple[int, int]:
        product_id = await client.create_product(staff, f"B{run_id[-8:]}-{index:05d}")
        await client.adjust_stock(staff, product_id, stock)
        return product_id, stock

    jobs = [product(i, config.stock_per_sku) for i in range(config.skus)]
    jobs.append(product(config.skus, config.flash_stock))
    created = await _bounded(SEED_CONCURRENCY, jobs)
    given = dict(created)
    ids = [p for p, _ in created]
    return ids[:-1], ids[-1], given


async def drive(
    config: BenchConfig,
    rs: Stack,
    listener: OutcomeListener,
    results: dict[str, Any],
    phases: Phases,
) -> tuple[Bench, dict[int, int]]:
    urls = {name: rs.url(name) for name in ("inventory", "orders", "user-notification")}
    async with Client(urls) as client:
        phases.begin("setup: customers and products", "registering customers, seeding products")
        staff = await client.token(STAFF_USERNAME, STAFF_PASSWORD)
        began = time.monotonic()
        customers: list[Customer] = await _bounded(
            REGISTER_CONCURRENCY,
            [client.register(f"bench-{rs.run_id[-8:]}-{i}") for i in range(config.customers)],
        )
        log(f"registered {len(customers)} customers in {time.monotonic() - began:.1f}s")
        began = time.monotonic()
        products, flash_product, given = await _seed(config, client, staff, rs.run_id)
        replica_wait = await _wait_for_replica(
            rs.database_urls["orders"], [*products, flash_product]
        )
        log(
            f"seeded {len(products) + 1} products in {time.monotonic() - began:.1f}s "
            f"(replica caught up {replica_wait:.1f}s after the last one)"
        )
        results["setup"] = {
            "customers": len(customers),
            "products": len(products) + 1,
            "seed_seconds": round(time.monotonic() - began, 1),
        }
        listener.attach(asyncio.get_running_loop())
        bench = Bench(
            config, client, listener, rs, customers, products, flash_product,
            random.Random(config.seed), staff=staff,
        )  # fmt: skip
        scenarios: dict[str, Any] = results["scenarios"]
        try:
            if "a" in config.scenarios:
                phases.begin("scenario a", "scenario (a): closed loop")
                scenarios["a"] = await run_closed(bench, "a")
            if "b" in config.scenarios:
                rates: list[dict[str, Any]] = []
                skipped: list[int] = []
                for rate in config.open_rates:
                    if rates and rates[-1]["saturated"]:
                        skipped.append(rate)
                        continue
                    phases.begin("scenario b", f"scenario (b): open loop at {rate}/s")
                    rates.append(await run_open(bench, rate, f"b-{rate}"))
                    await asyncio.sleep(1.0)
                scenarios["b"] = {
                    "definition": (
                        f"Orders arrive on a fixed schedule ({config.open_seconds:g} s per rate, "
                        "evenly spaced, random customer and lines as in (a)); latency counts from "
                        "the scheduled arrival, so a lagging client cannot hide delay. A rate "
                        "stops early, and higher rates are skipped, once more orders are "
                        f"outstanding than {config.saturation_seconds:g} s of arrivals "
                        "(saturated: its latency would only grow with the test's length)."
                    ),
                    "rates": rates,
                    "skipped_rates": skipped,
                }
            if "c" in config.scenarios:
                phases.begin("scenario c", "scenario (c): flash sale")
                scenarios["c"] = await run_flash(bench, "c")
            if "d" in config.scenarios:
                phases.begin("scenario d", "scenario (d): backlog drain")
                scenarios["d"] = await run_backlog(bench, "d")
            if "e" in config.scenarios:
                phases.begin(
                    "scenario e",
                    f"scenario (e): {config.grown_orders} past orders loaded, then (a) and the "
                    "read endpoints",
                )
                scenarios["e"] = await run_grown(bench, "e")
            if config.profile:
                phases.begin(
                    "profile",
                    f"profile: scenario (a) again under py-spy for {config.profile_seconds}s",
                )
                scenarios["a_profiled"] = await profile_closed(bench, results)
        finally:
            listener.detach()
    return bench, given


async def profile_closed(bench: Bench, results: dict[str, Any]) -> dict[str, Any]:
    config = bench.config
    out_dir = config.plots_dir / "profile"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    profiled = dataclasses.replace(
        config, closed_seconds=config.profile_seconds + 3.0, warmup_seconds=1.0
    )
    bench.config = profiled
    first = len(bench.records)
    task = asyncio.create_task(run_closed(bench, "a_profiled"))
    # start sampling once the warm-up is over (every customer had an order final)
    while len(bench.records) - first < config.clients and not task.done():
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.5)
    pids = profiling.targets(bench.system.system)
    before = {label: machine.schedstat(pid) for label, pid in pids.items()}
    started = profiling.start(bench.system.system, config.profile_seconds, out_dir)
    await asyncio.sleep(config.profile_seconds)
    after = {label: machine.schedstat(pid) for label, pid in pids.items()}
    shares = profiling.scheduling(before, after, config.profile_seconds)
    outcome = await task
    summaries = await asyncio.to_thread(profiling.finish, started, shares)
    bench.config = config
    results["profile"] = summaries
    (out_dir / "top.md").write_text(
        profiling.markdown(summaries, outcome.get("final_orders_per_second"))
    )
    outcome["profile_dir"] = str(out_dir)
    return outcome


def run_bench(config: BenchConfig, command: str = "python -m bench") -> dict[str, Any]:
    """Everything: baselines, the system, the scenarios, checks, the report. Returns results."""
    began = time.monotonic()
    run_id = run_id_for("bench")
    work_dir = Path(tempfile.mkdtemp(prefix=f"{run_id}-"))
    log(f"run {run_id}; process logs in {work_dir / 'logs'}")
    results: dict[str, Any] = {
        "name": config.name,
        "quick": config.quick,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "config": {k: v for k, v in dataclasses.asdict(config).items() if k != "output_dir"},
        "machine": machine.machine(),
        "versions": machine.versions(),
        "postgres_settings": machine.postgres_settings(),
        "scenarios": {},
        "notes": list(config.notes),
    }
    load = results["machine"]["load_average_at_start"][0]
    if load > 0.5:
        results["notes"].append(
            f"The machine was not idle when the run began (1-minute load average {load} on "
            f"{results['machine']['cores']} cores): other work shared it, so absolute figures "
            "are noisy; the ratios to the baselines measured in the same run are the fairer "
            "comparison."
        )
    phases = Phases()
    rounds = []
    phases.begin("baselines", "baselines: pgbench and the bare DRF insert endpoint")
    rounds.append(
        {
            "pgbench": baselines.pgbench(config, run_id),
            "drf_insert": baselines.drf_insert(config, run_id, work_dir / "logs"),
        }
    )
    listener: OutcomeListener | None = None
    bench: Bench | None = None
    try:
        phases.begin("system start", "starting the system (migrations, every service's processes)")
        with running_system(
            work_dir, run_id, web_workers=config.web_workers, keep=config.keep
        ) as rs:
            listener = OutcomeListener(BROKER_URL, rs.prefix)
            listener.start()
            try:
                bench, given = asyncio.run(drive(config, rs, listener, results, phases))
            finally:
                listener.stop()
            phases.begin("checks", "checking correctness")
            flash = bench.flash_product if "c" in config.scenarios else None
            results["correctness"] = checks.check(
                rs, bench.records, listener, given, flash, config.flash_stock
            )
            phases.begin("system stop", "stopping the system")
        for _ in range(config.baseline_rounds - 1):
            phases.begin("baselines", "baselines again, after the scenarios")
            rounds.append(
                {
                    "pgbench": baselines.pgbench(config, run_id),
                    "drf_insert": baselines.drf_insert(config, run_id, work_dir / "logs"),
                }
            )
        phases.begin("report", "writing the report")
        results["baselines"] = report.combine_baselines(rounds)
        report.add_ratios(results)
        results["targets"] = report.evaluate_targets(results)
        results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        results["phases_seconds"] = phases.seconds
        results["duration_seconds"] = round(time.monotonic() - began, 1)
        written = report.write(config, results, bench.records, listener, bench.windows)
        phases.end()
        log("wrote " + ", ".join(str(p) for p in written[:2]))
    finally:
        if not config.keep and (results.get("correctness") or {}).get("passed"):
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            log(f"kept {work_dir} (logs)")
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the CI smoke run (< 2 minutes)")
    parser.add_argument("--smoke", action="store_true", help="the test suite's tiny run")
    parser.add_argument("--profile", action="store_true", help="py-spy during scenario (a)")
    parser.add_argument("--scenarios", help="a subset, e.g. a,c (default: a,b,c,d,e)")
    parser.add_argument("--clients", type=int, help="concurrent customers (closed loop)")
    parser.add_argument("--web-workers", type=int, help="gunicorn sync workers per service")
    parser.add_argument("--seconds", type=float, help="scenario (a)'s measured duration")
    parser.add_argument("--rates", help="scenario (b)'s arrival rates, e.g. 50,100,200")
    parser.add_argument("--open-seconds", type=float, help="scenario (b)'s seconds per rate")
    parser.add_argument("--output-dir", type=Path, help="where the report goes")
    parser.add_argument("--name", help="report file name (default bench / bench-quick)")
    parser.add_argument("--note", action="append", default=[], help="a line for the report")
    parser.add_argument("--keep", action="store_true", help="keep databases and logs")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> BenchConfig:
    config = SMOKE if args.smoke else QUICK if args.quick else FULL
    changes: dict[str, Any] = {
        "profile": args.profile,
        "keep": args.keep,
        "notes": tuple(args.note),
    }
    if args.scenarios:
        changes["scenarios"] = tuple(s.strip() for s in args.scenarios.split(",") if s.strip())
    if args.clients:
        changes["clients"] = args.clients
    if args.web_workers:
        changes["web_workers"] = args.web_workers
    if args.seconds:
        changes["closed_seconds"] = args.seconds
    if args.rates:
        changes["open_rates"] = tuple(int(r) for r in args.rates.split(",") if r.strip())
    if args.open_seconds:
        changes["open_seconds"] = args.open_seconds
    if args.output_dir:
        changes["output_dir"] = args.output_dir.resolve()
    if args.name:
        changes["name"] = args.name
    if args.no_progress or (not sys.stderr.isatty() and os.environ.get("CI")):
        changes["progress"] = False
    return dataclasses.replace(config, **changes)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = config_from(args)
    command = "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        results = run_bench(config, command.strip())
    except Exception:
        traceback.print_exc()
        return 2
    correctness = results["correctness"]
    print(
        f"\ncorrectness: {'PASSED' if correctness['passed'] else 'FAILED'} "
        f"(final {correctness['every_order_final']}, lost {correctness['lost']}, "
        f"oversold {correctness['oversold']}, reconcile exit "
        f"{correctness['reconcile_stock_exit_code']})"
    )
    for target in results["targets"]:
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[target["pass"]]
        print(f"{verdict:4}  {target['target']}: {target['measured']}")
    print(f"report: {config.report_md}")
    return 0 if correctness["passed"] else 1
