"""The short fault-injection suite, part of ``make test``: three scenarios on private servers.

The whole system runs as real processes on a private RabbitMQ node and private PostgreSQL
clusters (never the shared ones); the full suite is ``make chaos``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.infra import missing_tools
from tests.chaos.scenarios import Environment, Scenario, environment, run_scenario, short_suite

SCENARIOS = short_suite()


@pytest.fixture(scope="module")
def chaos_environment() -> Iterator[Environment]:
    missing = missing_tools()
    if missing:
        pytest.skip("cannot start private servers: missing " + "; ".join(missing))
    with environment(SCENARIOS) as env:
        yield env


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_survives(chaos_environment: Environment, scenario: Scenario) -> None:
    result = run_scenario(chaos_environment, scenario)
    print(f"{scenario.name}: {result.details.get('findings', {})}")
    assert result.accepted > 0.9 * scenario.orders, result.details.get("http_outcomes")
    assert (result.lost, result.oversold, result.duplicate_effects) == (0, 0, 0), result.violations
    assert result.dead_lettered == result.dead_letters_expected, result.violations
    assert result.recover_seconds is not None, result.violations
    assert result.status == "passed", result.violations
