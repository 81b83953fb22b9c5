"""The suite's pace: half the closed-loop capacity of the latest full ``make bench``."""

from __future__ import annotations

import json
from pathlib import Path

from tests.chaos.scenarios import FALLBACK_RATE, default_rate, full_suite


def _bench(path: Path, closed: float, *, quick: bool = False) -> Path:
    report = {
        "quick": quick,
        "date": "2026-12-03T14:39:14+00:00",
        "scenarios": {"a": {"final_orders_per_second": closed}},
    }
    path.write_text(json.dumps(report))
    return path


def test_half_the_closed_loop_capacity_of_a_full_bench(tmp_path: Path) -> None:
    rate = default_rate(_bench(tmp_path / "bench.json", 40.6))
    assert rate.per_second == 20.3
    assert "40.6" in rate.source and "2026-12-03" in rate.source


def test_the_fallback_without_a_full_bench(tmp_path: Path) -> None:
    assert default_rate(tmp_path / "missing.json").per_second == FALLBACK_RATE
    quick = default_rate(_bench(tmp_path / "bench.json", 40.6, quick=True))
    assert quick.per_second == FALLBACK_RATE
    (tmp_path / "broken.json").write_text("{")
    assert default_rate(tmp_path / "broken.json").per_second == FALLBACK_RATE


def test_every_scenario_runs_at_the_rate_given() -> None:
    assert {scenario.rate for scenario in full_suite(rate=17.5)} == {17.5}
