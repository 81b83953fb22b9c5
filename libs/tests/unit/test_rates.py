"""The abuse limits' rates, and the stacks of tests and benchmarks that turn them all off."""

from __future__ import annotations

import re

import pytest

from devstack.stack import NO_ABUSE_LIMITS
from service_runtime.rates import Rate, parse_rate
from service_runtime.settings import REPO_ROOT


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("10/15m", Rate(10, 900)),
        ("120/m", Rate(120, 60)),
        ("20/h", Rate(20, 3600)),
        (" 5 / 2d ", Rate(5, 172800)),
        ("1/s", Rate(1, 1)),
        ("off", None),
        ("", None),
        ("0", None),
        (None, None),
    ],
)
def test_a_rate_is_a_count_per_window(text: str | None, rate: Rate | None) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["10", "10/", "0/m", "10/0m", "10/15x", "ten/m", "-1/m"])
def test_a_malformed_rate_is_refused_with_the_settings_name(text: str) -> None:
    with pytest.raises(ValueError, match="THROTTLE_X"):
        parse_rate(text, name="THROTTLE_X")


def test_a_window_ends_where_the_next_begins() -> None:
    rate = Rate(10, 60)
    assert rate.window(120.0) == (2, 60)
    assert rate.window(179.2) == (2, 1)
    assert rate.window(180.0) == (3, 60)


def test_the_test_and_benchmark_stacks_turn_every_documented_limit_off() -> None:
    documented = set(
        re.findall(r"^(THROTTLE_\w+_PER_\w+)=", (REPO_ROOT / ".env.example").read_text(), re.M)
    )
    assert documented and set(NO_ABUSE_LIMITS) == documented
    assert all(parse_rate(value) is None for value in NO_ABUSE_LIMITS.values())
