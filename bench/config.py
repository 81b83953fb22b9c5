"""How big a benchmark run is: the full run, the quick smoke run, and a tiny one for tests."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
REPORTS_DIR = REPO_ROOT / "reports"


@dataclass(frozen=True)
class BenchConfig:
    name: str = "bench"  # the report is <output_dir>/<name>.md, .json and <name>/*.png
    output_dir: Path = REPORTS_DIR
    quick: bool = False
    # the system
    web_workers: int = 2  # gunicorn sync workers per service, and for the baseline endpoint
    # load
    customers: int = 50
    skus: int = 1000
    stock_per_sku: int = 1_000_000
    clients: int = 32  # concurrent customers in the closed-loop scenarios and baselines
    max_lines: int = 3
    max_quantity: int = 3
    # (a) closed loop
    warmup_seconds: float = 3.0
    closed_seconds: float = 30.0
    # (b) open loop
    open_rates: tuple[int, ...] = (50, 100, 200, 400)
    open_seconds: float = 15.0
    # (c) flash sale
    flash_orders: int = 5000
    flash_stock: int = 500
    # (d) backlog drain
    backlog_orders: int = 10_000
    # (e) grown data: this many past orders are loaded first, then (a) runs again and the
    # list and detail endpoints are timed, each this many times, one request at a time
    grown_orders: int = 1_000_000
    endpoint_requests: int = 200
    # baselines
    baseline_seconds: float | None = None  # None: the same duration as scenario (a)
    baseline_rounds: int = 2  # before and after the scenarios; ratios use the mean
    pgbench_seconds: int = 10
    pgbench_clients: int = 4
    # waiting for stragglers: an order not final this long after its POST counts as not final,
    # and waiting for a batch of orders gives up after this long without a single new outcome
    final_timeout: float = 180.0
    stall_seconds: float = 60.0
    # (b) stops raising the rate once more orders are outstanding than this many seconds of
    # arrivals (the system is saturated: latency would only grow with the test's length)
    saturation_seconds: float = 5.0
    # py-spy during an extra, separately reported run of scenario (a)
    profile: bool = False
    profile_seconds: int = 20
    progress: bool = True
    keep: bool = False  # keep the databases, broker names and work directory afterwards
    seed: int = 5
    notes: tuple[str, ...] = ()  # lines for the report (e.g. that the machine was shared)
    scenarios: tuple[str, ...] = ("a", "b", "c", "d", "e")

    @property
    def baseline_duration(self) -> float:
        return self.baseline_seconds if self.baseline_seconds is not None else self.closed_seconds

    @property
    def report_md(self) -> Path:
        return self.output_dir / f"{self.name}.md"

    @property
    def report_json(self) -> Path:
        return self.output_dir / f"{self.name}.json"

    @property
    def plots_dir(self) -> Path:
        return self.output_dir / self.name


FULL = BenchConfig()

# `make bench QUICK=1`: a correctness smoke test for CI, well under two minutes, no timing asserts.
QUICK = replace(
    FULL,
    name="bench-quick",
    quick=True,
    customers=8,
    skus=100,
    clients=16,
    warmup_seconds=1.0,
    closed_seconds=3.0,
    open_rates=(50, 100),
    open_seconds=2.0,
    flash_orders=500,
    flash_stock=50,
    backlog_orders=500,
    grown_orders=20_000,
    endpoint_requests=30,
    baseline_rounds=1,
    pgbench_seconds=3,
    final_timeout=60.0,
    stall_seconds=30.0,
    profile_seconds=5,
)

# The smallest run that still exercises every scenario: for the test suite.
SMOKE = replace(
    QUICK,
    name="bench-smoke",
    customers=2,
    skus=10,
    clients=8,
    warmup_seconds=0.5,
    closed_seconds=3.0,
    open_rates=(20,),
    open_seconds=1.5,
    flash_orders=60,
    flash_stock=10,
    backlog_orders=60,
    grown_orders=2_000,
    endpoint_requests=5,
    pgbench_seconds=2,
    progress=False,
)
