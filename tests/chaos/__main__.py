"""``python -m tests.chaos``: run the fault-injection suite and write its report.

python -m tests.chaos                      # every scenario, reports/chaos.md + .json
python -m tests.chaos --short              # the three short scenarios of ``make test``
python -m tests.chaos --only poison,kill-relays --scale 0.25
python -m tests.chaos --rate 12              # orders per second (default: from make bench)
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from service_runtime.settings import REPO_ROOT
from tests.chaos import report
from tests.chaos.scenarios import (
    Rate,
    Result,
    default_rate,
    environment,
    full_suite,
    run_scenario,
    short_suite,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--short", action="store_true", help="the short suite of make test")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply order counts")
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="orders per second of each scenario (default: half of the closed-loop capacity in "
        "reports/bench.json)",
    )
    parser.add_argument("--report-dir", type=Path, default=REPO_ROOT / "reports")
    args = parser.parse_args(argv)

    rate = default_rate() if args.rate is None else Rate(args.rate, "set with --rate")
    scenarios = short_suite() if args.short else full_suite(args.scale, rate.per_second)
    if not args.short:
        print(f"sending {rate.per_second} orders/s: {rate.source}", flush=True)
    if args.only:
        wanted = {name.strip() for name in args.only.split(",") if name.strip()}
        unknown = wanted - {s.name for s in scenarios}
        if unknown:
            parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
        scenarios = [s for s in scenarios if s.name in wanted]

    # A SIGTERM (a CI timeout, say) unwinds like Ctrl-C: every private server gets stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    started = datetime.now(UTC)
    results: list[Result] = []
    with environment(scenarios) as env:
        print(f"private servers under {env.root}", flush=True)
        for scenario in scenarios:
            print(f"\n== {scenario.name}: {scenario.title}", flush=True)
            began = time.monotonic()
            result = run_scenario(env, scenario, say=lambda line: print(line, flush=True))
            results.append(result)
            print(f"  {result.status} in {time.monotonic() - began:.0f}s", flush=True)
            for violation in result.violations:
                print(f"  violation: {violation}", flush=True)
            report.write(results, args.report_dir, suite=_suite(args), started=started, rate=rate)
    print()
    print(report.table(results))
    print(f"\nreport: {args.report_dir / 'chaos.md'}")
    return 0 if all(r.status in ("passed", "not run") for r in results) else 1


def _suite(args: argparse.Namespace) -> str:
    if args.short:
        return "short"
    return "full" if not args.only and args.scale == 1.0 else f"partial (scale {args.scale})"


if __name__ == "__main__":
    sys.exit(main())
