"""Writing the report: JSON with every figure, Markdown for people, PNG plots."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from bench.config import REPO_ROOT, REPORTS_DIR, BenchConfig
from bench.listener import OutcomeListener
from bench.scenarios import ENDPOINT_TARGET_P99_MS, OrderRecord

SCENARIO_TITLES = {
    "a": "(a) closed loop, max throughput",
    "c": "(c) flash sale",
    "d": "(d) backlog drain",
    "e": "(e) grown data: (a) again over loaded history",
    "a_profiled": "(a) again, under py-spy",
}
GROWN_THROUGHPUT_RATIO = 0.9  # (e)'s closed loop against (a)'s, on empty databases


# What each optimisation bought, measured change by change (see its own method section).
CHANGES = REPORTS_DIR / "bench-changes.md"


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return round(value / base, 3)


# The performance issue's targets: (a) is a milestone on the way to 0.5 x the bare insert.
CLOSED_LOOP_RATIO = 0.25
DRAIN_RATIO = 0.1
OPEN_LOOP_TARGETS_MS = {100: {"p50": 12, "p99": 50}, 200: {"p99": 250}}


def _open_rate(scenarios: dict[str, Any], rate: int) -> tuple[bool | None, str]:
    """Whether the open loop at ``rate`` met its latency bounds, and what it measured."""
    b = scenarios.get("b", {})
    bounds = OPEN_LOOP_TARGETS_MS[rate]
    found = next((r for r in b.get("rates", []) if r["offered_rate"] == rate), None)
    if found is None:
        if rate in b.get("skipped_rates", []):
            return False, f"{rate}/s not run: the system saturated at a lower rate"
        return None, f"{rate}/s not run in this configuration"
    latency = found["latency_ms"]
    measured = f"{rate}/s: p50 {latency['p50']} ms, p99 {latency['p99']} ms"
    passed = all(latency[k] is not None and latency[k] <= limit for k, limit in bounds.items())
    if found["not_final"]:
        passed, measured = False, f"{measured}; {found['not_final']} orders not final"
    if found.get("saturated"):
        passed, measured = False, f"{measured} (saturated)"
    return passed, measured


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's speed targets, each with what was measured and pass/fail (None: n/a)."""
    drf = results["baselines"]["drf_insert"]["requests_per_second"]
    tps = results["baselines"]["pgbench"]["tps"]
    scenarios = results["scenarios"]
    targets: list[dict[str, Any]] = []

    a = scenarios.get("a", {}).get("final_orders_per_second")
    targets.append(
        {
            "id": "a",
            "target": f"(a) final orders/s ≥ {CLOSED_LOOP_RATIO} x the bare insert's requests/s",
            "measured": f"{a} orders/s = {_ratio(a, drf)} x {drf} req/s" if a else None,
            "pass": (a >= CLOSED_LOOP_RATIO * drf) if a and drf else None,
        }
    )
    outcomes = [_open_rate(scenarios, rate) for rate in OPEN_LOOP_TARGETS_MS]
    verdicts = [passed for passed, _ in outcomes]
    targets.append(
        {
            "id": "b",
            "target": (
                "(b) at 100 orders/s POST → final p50 ≤ 12 ms and p99 ≤ 50 ms; "
                "200 orders/s sustained without saturation, p99 ≤ 250 ms"
            ),
            "measured": "; ".join(measured for _, measured in outcomes),
            "pass": None if None in verdicts else all(verdicts),
        }
    )
    c = scenarios.get("c")
    if c:
        ratio = _ratio(c["final_orders_per_second"], a)
        exact = c["confirmed"] == c["stock"]
        targets.append(
            {
                "id": "c",
                "target": f"(c) exactly {c['stock']} confirmed, throughput ≥ 0.8 x (a)",
                "measured": (
                    f"{c['confirmed']} confirmed; {c['final_orders_per_second']} orders/s "
                    f"= {ratio} x (a)"
                ),
                "pass": bool(exact and ratio is not None and ratio >= 0.8),
            }
        )
    d = scenarios.get("d")
    if d:
        rate = d["drain_rate_per_second"]
        targets.append(
            {
                "id": "d",
                "target": f"(d) drain rate ≥ {DRAIN_RATIO} x pgbench single-row update tps",
                "measured": f"{rate} orders/s = {_ratio(rate, tps)} x {tps} tps",
                "pass": (rate >= DRAIN_RATIO * tps) if rate and tps else False,
            }
        )
    e = scenarios.get("e")
    if e:
        ratio = _ratio(e["final_orders_per_second"], a)
        slowest = max(
            e["endpoints"], key=lambda x: x["latency_ms"]["p99"] or float("inf"), default=None
        )
        within = sum(1 for x in e["endpoints"] if x["p99_within_target"])
        targets.append(
            {
                "id": "e",
                "target": (
                    f"(e) with {e['load']['orders']} orders loaded: closed loop ≥ "
                    f"{GROWN_THROUGHPUT_RATIO} x (a), every list or detail endpoint p99 ≤ "
                    f"{ENDPOINT_TARGET_P99_MS:g} ms"
                ),
                "measured": (
                    f"{e['final_orders_per_second']} orders/s = "
                    + (f"{ratio} x (a); " if ratio is not None else "(a) not run; ")
                    + f"{within} of {len(e['endpoints'])} endpoints within"
                    + (
                        f", slowest p99 {slowest['latency_ms']['p99']} ms ({slowest['endpoint']})"
                        if slowest
                        else ""
                    )
                ),
                # Without (a) in the run, only the endpoints are judged.
                "pass": (ratio is None or ratio >= GROWN_THROUGHPUT_RATIO)
                and within == len(e["endpoints"]),
            }
        )
    return targets


def add_ratios(results: dict[str, Any]) -> None:
    drf = results["baselines"]["drf_insert"]["requests_per_second"]
    tps = results["baselines"]["pgbench"]["tps"]
    scenarios = results["scenarios"]
    entries: list[dict[str, Any]] = [s for k, s in scenarios.items() if k != "b"]
    entries += scenarios.get("b", {}).get("rates", [])
    for entry in entries:
        rate = entry.get("drain_rate_per_second", entry.get("final_orders_per_second"))
        entry["ratio_to_drf_insert"] = _ratio(rate, drf)
        entry["ratio_to_pgbench"] = _ratio(rate, tps)


def combine_baselines(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    drf = [r["drf_insert"] for r in rounds]
    pg = [r["pgbench"] for r in rounds]
    return {
        "drf_insert": {
            "requests_per_second": _mean([r["requests_per_second"] for r in drf]),
            "rounds": drf,
        },
        "pgbench": {"tps": _mean([r["tps"] for r in pg]), "rounds": pg},
    }


# plots -------------------------------------------------------------------------------------


def _latencies(records: list[OrderRecord], listener: OutcomeListener, scenario: str) -> list[float]:
    values = []
    for record in records:
        if record.scenario != scenario or not record.measured or record.post.order_id is None:
            continue
        outcome = listener.outcomes.get(record.post.order_id)
        if outcome is not None:
            values.append(1000 * (outcome.at - record.post.started))
    return sorted(values)


def plots(
    directory: Path,
    records: list[OrderRecord],
    listener: OutcomeListener,
    results: dict[str, Any],
    windows: dict[str, tuple[float, float]],
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    scenarios = sorted({r.scenario for r in records}, key=lambda s: (s[0], len(s), s))

    def label(scenario: str) -> str:
        if scenario.startswith("b-"):
            return f"(b) open loop {scenario[2:]}/s"
        return SCENARIO_TITLES.get(scenario, scenario)

    # latency CDF per scenario
    figure, axes = plt.subplots(figsize=(9, 5.5))
    for scenario in scenarios:
        values = _latencies(records, listener, scenario)
        if values:
            fractions = [(i + 1) / len(values) for i in range(len(values))]
            axes.plot(values, fractions, label=f"{label(scenario)} (n={len(values)})")
    axes.set_xscale("log")
    axes.set_xlabel("POST → final status (ms, log scale)")
    axes.set_ylabel("fraction of orders")
    axes.set_title("Latency distribution (CDF)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    path = directory / "latency_cdf.png"
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    written.append(path)

    # histograms of the closed loop and the flash sale
    shown = [s for s in ("a", "c") if _latencies(records, listener, s)]
    if shown:
        figure, axes_list = plt.subplots(1, len(shown), figsize=(6 * len(shown), 4.5))
        for axes, scenario in zip(axes_list if len(shown) > 1 else [axes_list], shown, strict=True):
            values = _latencies(records, listener, scenario)
            top = values[min(len(values) - 1, math.ceil(0.995 * len(values)))]
            axes.hist([v for v in values if v <= top], bins=60, color="tab:blue")
            axes.set_xlabel("POST → final status (ms), up to p99.5")
            axes.set_ylabel("orders")
            axes.set_title(label(scenario))
            axes.grid(True, alpha=0.3)
        path = directory / "latency_histogram.png"
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)

    # throughput over time
    origin = min((r.post.started for r in records), default=0.0)
    finals = sorted(
        o.at - origin
        for r in records
        if r.post.order_id and (o := listener.outcomes.get(r.post.order_id)) is not None
    )
    accepted = sorted(r.post.answered - origin for r in records if r.post.accepted)
    if finals:
        seconds = int(max(finals[-1], accepted[-1] if accepted else 0)) + 1
        final_bins = [0] * seconds
        accept_bins = [0] * seconds
        for t in finals:
            final_bins[min(int(t), seconds - 1)] += 1
        for t in accepted:
            accept_bins[min(int(t), seconds - 1)] += 1
        figure, axes = plt.subplots(figsize=(11, 4.8))
        axes.plot(range(seconds), accept_bins, label="POST accepted (202) per s", alpha=0.6)
        axes.plot(range(seconds), final_bins, label="orders final per s", linewidth=1.6)
        colours = ["#dddddd", "#eeeeee"]
        for index, (scenario, (begin, end)) in enumerate(
            sorted(windows.items(), key=lambda x: x[1])
        ):
            axes.axvspan(begin - origin, end - origin, color=colours[index % 2], zorder=0)
            height = axes.get_ylim()[1] * (0.95 if index % 2 == 0 else 0.89)
            axes.text(begin - origin, height, scenario, fontsize=8)
        axes.set_xlabel("seconds since the first order")
        axes.set_ylabel("orders per second")
        axes.set_title("Throughput over time (shaded: scenario windows)")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8, loc="upper right")
        path = directory / "throughput.png"
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)

    # latency against the offered rate
    rates = results["scenarios"].get("b", {}).get("rates", [])
    if rates:
        figure, axes = plt.subplots(figsize=(7, 4.5))
        offered = [r["offered_rate"] for r in rates]
        for key in ("p50", "p90", "p99"):
            axes.plot(offered, [r["latency_ms"][key] for r in rates], marker="o", label=key)
        axes.set_yscale("log")
        axes.set_xlabel("offered orders per second (open loop)")
        axes.set_ylabel("POST → final status (ms, log scale)")
        axes.set_title("(b) Latency curve")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
        path = directory / "latency_vs_rate.png"
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written


# markdown ----------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _starvation(cpu: dict[str, Any]) -> str:
    if "system_cores_used" not in cpu:
        return ""
    return (
        f"the system under test used {cpu['system_cores_used']} cores on average while "
        f"{cpu['system_threads_waiting_for_cpu']} of its threads, on average, were ready to run "
        "but waiting for a CPU."
    )


def _verdict(passed: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a"}[passed]


def headline_rows(results: dict[str, Any]) -> list[str]:
    scenarios = results["scenarios"]
    rows = [
        "| scenario | orders/s | x bare insert | x pgbench | p50 ms | p90 ms | p99 ms | max ms |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    entries: list[tuple[str, dict[str, Any]]] = []
    if "a" in scenarios:
        entries.append((SCENARIO_TITLES["a"], scenarios["a"]))
    for rate in scenarios.get("b", {}).get("rates", []):
        saturated = " (saturated)" if rate["saturated"] else ""
        entries.append((f"(b) open loop at {rate['offered_rate']}/s{saturated}", rate))
    if "c" in scenarios:
        entries.append((SCENARIO_TITLES["c"], scenarios["c"]))
    if "d" in scenarios:
        entries.append((f"{SCENARIO_TITLES['d']} (drain rate)", scenarios["d"]))
    if "e" in scenarios:
        entries.append((SCENARIO_TITLES["e"], scenarios["e"]))
    for title, entry in entries:
        latency = entry["latency_ms"]
        rate = entry.get("drain_rate_per_second", entry.get("final_orders_per_second"))
        rows.append(
            f"| {title} | {_fmt(rate)} | {_fmt(entry.get('ratio_to_drf_insert'))} | "
            f"{_fmt(entry.get('ratio_to_pgbench'))} | {_fmt(latency['p50'])} | "
            f"{_fmt(latency['p90'])} | {_fmt(latency['p99'])} | {_fmt(latency['max'])} |"
        )
    baselines = results["baselines"]
    rows.append(
        f"| baseline: bare DRF insert (req/s) | "
        f"{_fmt(baselines['drf_insert']['requests_per_second'])} | 1 | - | | | | |"
    )
    rows.append(
        f"| baseline: pgbench single-row update (tps) | {_fmt(baselines['pgbench']['tps'])} "
        "| - | 1 | | | | |"
    )
    return rows


def grown_rows(entry: dict[str, Any]) -> list[str]:
    """(e)'s load and its read endpoints, for the Scenarios section."""
    load = entry["load"]
    per_database = "; ".join(
        f"{service} {figures['rows']} rows in {figures['insert_seconds']} s "
        f"(+ VACUUM ANALYZE {figures['vacuum_analyze_seconds']} s)"
        for service, figures in load["per_database"].items()
    )
    rows = [
        f"Loaded {load['orders']} orders ({load['rows']} rows) in {load['seconds']} s, the "
        f"databases side by side: {per_database}.",
        "",
        f"| endpoint (after the load) | requests | p50 ms | p90 ms | p99 ms | max ms | failures "
        f"| p99 ≤ {ENDPOINT_TARGET_P99_MS:g} ms |",
        "|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for endpoint in entry["endpoints"]:
        latency = endpoint["latency_ms"]
        rows.append(
            f"| {endpoint['endpoint']} | {latency['count']} | {_fmt(latency['p50'])} | "
            f"{_fmt(latency['p90'])} | {_fmt(latency['p99'])} | {_fmt(latency['max'])} | "
            f"{endpoint['failures']} | {'yes' if endpoint['p99_within_target'] else 'NO'} |"
        )
    return [*rows, ""]


def _relative(path: Path, to: Path) -> str:
    return os.path.relpath(path, to)


def markdown(config: BenchConfig, results: dict[str, Any], plot_paths: list[Path]) -> str:
    machine = results["machine"]
    versions = results["versions"]
    correctness = results["correctness"]
    lines = [
        f"# Benchmark report{' (QUICK smoke run)' if config.quick else ''}",
        "",
        f"{results['date']} · {results['duration_seconds']:.0f} s · "
        f"`{results['command']}` · {machine['cores']} cores, "
        f"{machine['memory_total_gib']} GiB · generated by `bench/`",
        "",
    ]
    if config.quick:
        lines += [
            "> QUICK mode is a correctness smoke test with tiny sizes: its timings mean little.",
            "",
        ]
    for note in results["notes"]:
        lines += [f"> {note}", ""]
    lines += ["## Headline", "", *headline_rows(results), ""]
    lines += ["## Targets", "", "| target | measured | result |", "|---|---|---|"]
    for target in results["targets"]:
        lines.append(
            f"| {target['target']} | {_fmt(target['measured'])} | **{_verdict(target['pass'])}** |"
        )
    lines += [""]
    if not config.quick and CHANGES.exists():
        lines += [
            "## What each change bought",
            "",
            f"From [{CHANGES.name}]({_relative(CHANGES, config.output_dir)}), measured "
            "change by change on this machine (kept by hand; the run above measures the last).",
            "",
            *CHANGES.read_text().split("\n")[1:],  # without its title
            "",
        ]
    lines += [
        "## Correctness",
        "",
        f"**{'PASSED' if correctness['passed'] else 'FAILED'}** — "
        f"{correctness['accepted_orders']} orders accepted, "
        f"{correctness['orders_in_database']} in the orders database"
        + (
            f" (besides {correctness['orders_loaded_as_history']} loaded as history by (e))."
            if correctness.get("orders_loaded_as_history")
            else "."
        ),
        "",
        "| check | value |",
        "|---|---|",
    ]
    c = correctness
    checks = [
        ("every accepted order final (outcome event and database)", c["every_order_final"]),
        ("not final", c["not_final"]),
        ("lost (accepted, then missing or not final in the orders database)", c["lost"]),
        (
            "oversold (products with reserved + shipped > stock given, plus CHECK violations)",
            c["oversold"],
        ),
        ("CHECK constraints present and validated", c["check_constraints_ok"]),
        ("`manage.py reconcile_stock` exit code", c["reconcile_stock_exit_code"]),
        (
            "products where inventory's held units ≠ confirmed order units",
            c["inventory_and_orders_disagree_on_products"],
        ),
        ("outcome event ≠ database status", c["event_and_database_disagree"]),
        (
            "placed but the client saw no 2xx (of which not final)",
            f"{c['placed_but_unacknowledged']} ({c['placed_but_unacknowledged_not_final']})",
        ),
        (
            "duplicate outcome events (at-least-once relay; the first one counts)",
            c["duplicate_outcome_events"],
        ),
        ("database statuses", c["database_statuses"]),
    ]
    lines += [f"| {name} | {value} |" for name, value in checks]
    flash = correctness.get("flash_sale")
    if flash:
        lines.append(
            f"| flash sale: confirmed units / stock | {flash['confirmed_units']} / "
            f"{flash['stock']} ({'exact' if flash['exactly_the_stock'] else 'WRONG'}) |"
        )
    lines += [""]

    baselines = results["baselines"]
    lines += ["## Baselines (same run)", ""]
    lines.append(
        f"- **Bare DRF insert**: {_fmt(baselines['drf_insert']['requests_per_second'])} req/s "
        "(mean of rounds: "
        + ", ".join(
            f"{r['requests_per_second']} req/s, p50 {r['latency_ms']['p50']} ms, "
            f"{r['errors']} errors, machine busy {r['cpu']['machine_busy_percent']}%, server "
            f"{r['cpu'].get('system_cores_used')} cores used with "
            f"{r['cpu'].get('system_threads_waiting_for_cpu')} threads waiting for a CPU"
            for r in baselines["drf_insert"]["rounds"]
        )
        + "). `bench/baseline/`: one APIView validating a JSON body and inserting one row, "
        "under the services' gunicorn command, driven by the same client and clients count."
    )
    lines.append(
        f"- **pgbench**: {_fmt(baselines['pgbench']['tps'])} tps (rounds: "
        + ", ".join(str(r["tps"]) for r in baselines["pgbench"]["rounds"])
        + f"): `{baselines['pgbench']['rounds'][0]['script']}`, "
        f"`-c {baselines['pgbench']['rounds'][0]['clients']} "
        f"-T {baselines['pgbench']['rounds'][0]['seconds']}`, scale 1."
    )
    lines += [""]

    scenarios = results["scenarios"]
    lines += ["## Scenarios", ""]
    for key in ("a", "b", "c", "d", "e", "a_profiled"):
        if key not in scenarios:
            continue
        entry = scenarios[key]
        title = SCENARIO_TITLES.get(key, "(b) open loop at fixed arrival rates")
        if key == "a_profiled":
            title += " (not a headline figure)"
        lines += [f"### {title}", ""]
        if key == "b":
            lines += [
                entry["definition"],
                "",
                "| offered/s | achieved arrivals/s | orders | final/s | p50 | p90 | p99 | max ms "
                "| not final | saturated | max client lag ms | machine busy % |",
                "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
            ]
            for rate in entry["rates"]:
                latency = rate["latency_ms"]
                lines.append(
                    f"| {rate['offered_rate']} | {_fmt(rate['achieved_arrival_rate'])} | "
                    f"{rate['posted']}/{rate['planned_orders']} | "
                    f"{_fmt(rate['final_orders_per_second'])} | {_fmt(latency['p50'])} | "
                    f"{_fmt(latency['p90'])} | {_fmt(latency['p99'])} | {_fmt(latency['max'])} | "
                    f"{rate['not_final']} | {'yes' if rate['saturated'] else 'no'} | "
                    f"{_fmt(rate['max_client_lag_ms'])} | {rate['cpu']['machine_busy_percent']} |"
                )
            if entry.get("skipped_rates"):
                skipped = ", ".join(f"{r}/s" for r in entry["skipped_rates"])
                lines += ["", f"Not run (a lower rate saturated the system): {skipped}."]
            lines += [""]
            continue
        if "definition" in entry:
            lines += [entry["definition"], ""]
        skip = {
            "definition",
            "latency_ms",
            "post_latency_ms",
            "cpu",
            "statuses",
            "database_work_per_order",
            "load",
            "endpoints",
        }
        facts = [f"{k.replace('_', ' ')}: {_fmt(v)}" for k, v in entry.items() if k not in skip]
        lines += [
            "; ".join(facts) + ".",
            "",
            f"POST → final ms: {entry['latency_ms']}; POST → response ms: "
            f"{entry['post_latency_ms']}; statuses {entry['statuses']}; "
            f"machine busy {entry['cpu']['machine_busy_percent']}%, of which the load "
            f"generator {entry['cpu']['load_generator_cpu_percent_of_machine']}%; "
            f"{_starvation(entry['cpu'])}",
            "",
        ]
        if key == "e":
            lines += grown_rows(entry)
        work = entry.get("database_work_per_order")
        if work:
            lines += [
                "PostgreSQL work per final order (`pg_stat_database` over the whole scenario, "
                "warm-up included):",
                "",
                "| database | commits | rows inserted | rows updated | rows deleted "
                "| rows fetched |",
                "|---|--:|--:|--:|--:|--:|",
            ]
            for service, figures in work.items():
                lines.append(
                    f"| {service} | {figures['xact_commit']} | {figures['tup_inserted']} | "
                    f"{figures['tup_updated']} | {figures['tup_deleted']} | "
                    f"{figures['tup_fetched']} |"
                )
            lines.append("")
    if plot_paths:
        lines += ["## Plots", ""]
        for path in plot_paths:
            lines.append(f"![{path.stem}]({_relative(path, config.output_dir)})")
            lines.append("")
    lines += [
        "## Machine and versions",
        "",
        f"- CPU: {machine['cpu_model']}, {machine['cores']} cores; memory "
        f"{machine['memory_total_gib']} GiB ({machine['memory_available_gib']} GiB available at "
        f"start); kernel {machine['kernel']}; load average at start "
        f"{machine['load_average_at_start']}, at end {machine.get('load_average_at_end')}.",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "- PostgreSQL settings: "
        + ", ".join(f"{k}={v}" for k, v in results["postgres_settings"].items())
        + ".",
        f"- System under test: every service's gunicorn ({config.web_workers} sync workers "
        "each) and worker (consumer, outbox relay and periodic jobs in one process) as local "
        "processes, "
        "`DJANGO_DEBUG=0`, `CONN_MAX_AGE=None`, a fresh PostgreSQL database per service and a "
        "private broker prefix; the load generator (aiohttp) and the outcome listener run on the "
        "same machine.",
        "",
        "## Method",
        "",
        "- Latency is POST → final: from just before the POST (open loop: the scheduled "
        "arrival) to the moment the orders service's `order.confirmed`/`order.rejected` event "
        "reaches a private exclusive auto-delete queue bound to its exchange, stamped with "
        "`time.monotonic()` in a separate listener process. Nothing polls the API.",
        "- Throughput is final orders per second: (a) outcome events inside the measured window "
        "/ its length; (b) and (c) all of the scenario's finals / (last final - first POST); "
        "(d) finals / (last final - the moment inventory's workers were started).",
        "- Ratios divide a scenario's rate by the baselines' mean over their rounds.",
        "- (e)'s reads are timed at the client, one request at a time after its closed loop, "
        "from just before the request to its whole answer (a new connection each, as gunicorn's "
        "sync workers close them); a later page is the `next` link of an untimed first page.",
        "- Wall-clock seconds per phase of this run: "
        + ", ".join(f"{k} {v}" for k, v in results.get("phases_seconds", {}).items())
        + ".",
        "- Customers: "
        f"{config.customers} registered through the API, tokens reused; {config.skus} SKUs "
        "seeded through the API with ample stock (the orders service's replica is awaited in "
        "its database before load starts).",
        "",
    ]
    return "\n".join(lines)


def write(
    config: BenchConfig,
    results: dict[str, Any],
    records: list[OrderRecord],
    listener: OutcomeListener,
    windows: dict[str, tuple[float, float]],
) -> list[Path]:
    config.output_dir.mkdir(parents=True, exist_ok=True)
    plot_paths = plots(config.plots_dir, records, listener, results, windows)
    results["plots"] = [
        str(p.relative_to(REPO_ROOT)) if p.is_relative_to(REPO_ROOT) else str(p) for p in plot_paths
    ]
    config.report_json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    config.report_md.write_text(markdown(config, results, plot_paths))
    return [config.report_md, config.report_json, *plot_paths]
