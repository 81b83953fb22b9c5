"""The benchmark harness as a smoke test: every scenario at the smallest size, correctness only.

It runs the whole harness (baselines, the system on PostgreSQL, the five scenarios, the checks
and the report) with :data:`bench.config.SMOKE`, writing into a temporary directory, and asserts
correctness figures, never timings (`make bench QUICK=1` is the same at a larger size).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bench.config import SMOKE
from bench.run import run_bench


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    config = dataclasses.replace(SMOKE, output_dir=tmp_path_factory.mktemp("bench"))
    return run_bench(config, command="tests/bench/test_bench_quick.py")


def test_every_order_is_final_and_none_lost(results: dict) -> None:
    correctness = results["correctness"]
    assert correctness["accepted_orders"] > 0
    assert correctness["every_order_final"], correctness
    assert correctness["not_final"] == 0
    assert correctness["lost"] == 0
    assert correctness["placed_but_unacknowledged_not_final"] == 0
    assert correctness["event_and_database_disagree"] == 0


def test_nothing_oversold(results: dict) -> None:
    correctness = results["correctness"]
    assert correctness["oversold"] == 0
    assert correctness["check_constraint_violations"] == 0
    assert correctness["check_constraints_ok"]
    assert correctness["reconcile_stock_exit_code"] == 0, correctness["reconcile_stock_output"]
    assert correctness["inventory_and_orders_disagree_on_products"] == 0


def test_flash_sale_confirms_exactly_the_stock(results: dict) -> None:
    flash = results["scenarios"]["c"]
    assert flash["confirmed"] == SMOKE.flash_stock
    assert flash["rejected"] == SMOKE.flash_orders - SMOKE.flash_stock
    assert results["correctness"]["flash_sale"]["exactly_the_stock"]


def test_every_scenario_ran_to_the_end(results: dict) -> None:
    scenarios = results["scenarios"]
    closed = scenarios["a"]
    assert closed["warmup_orders"] >= SMOKE.clients  # one per customer before the clock starts
    assert closed["final"] > 0 and closed["not_final"] == 0
    assert [r["offered_rate"] for r in scenarios["b"]["rates"]] == list(SMOKE.open_rates)
    assert all(r["not_final"] == 0 for r in scenarios["b"]["rates"])
    backlog = scenarios["d"]
    assert backlog["accepted"] == SMOKE.backlog_orders
    assert backlog["final_before_restart"] == 0  # inventory really was down
    assert backlog["inventory_queue_depth_at_restart"] >= SMOKE.backlog_orders
    assert backlog["not_final"] == 0


def test_grown_data_is_loaded_and_every_read_answers(results: dict) -> None:
    grown = results["scenarios"]["e"]
    assert grown["load"]["orders"] == SMOKE.grown_orders
    assert results["correctness"]["orders_loaded_as_history"] == SMOKE.grown_orders
    assert grown["final"] > 0 and grown["not_final"] == 0
    assert len(grown["endpoints"]) >= 10
    for endpoint in grown["endpoints"]:
        assert endpoint["failures"] == 0, endpoint
        assert endpoint["latency_ms"]["count"] == SMOKE.endpoint_requests


def test_report_is_written_with_baselines_and_targets(results: dict) -> None:
    assert results["correctness"]["passed"]
    assert results["baselines"]["drf_insert"]["requests_per_second"] > 0
    assert results["baselines"]["pgbench"]["tps"] > 0
    assert {t["id"] for t in results["targets"]} == {"a", "b", "c", "d", "e"}
    output = Path(results["plots"][0]).parent.parent
    report = json.loads((output / "bench-smoke.json").read_text())
    assert report["correctness"]["passed"]
    markdown = (output / "bench-smoke.md").read_text()
    assert "## Targets" in markdown and "## Correctness" in markdown
    for plot in results["plots"]:
        assert Path(plot).stat().st_size > 0
