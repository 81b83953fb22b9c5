"""Percentiles and summaries of latencies, without numpy."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN when empty."""
    if not sorted_values:
        return math.nan
    position = (len(sorted_values) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    weight = position - low
    return sorted_values[low] * (1 - weight) + sorted_values[high] * weight


def summary_ms(seconds: Sequence[float]) -> dict[str, float | int | None]:
    """Count, mean, p50, p90, p99 and max of latencies given in seconds, in milliseconds."""
    values = sorted(seconds)
    if not values:
        return {"count": 0, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    return {
        "count": len(values),
        "mean": round(1000 * sum(values) / len(values), 2),
        "p50": round(1000 * percentile(values, 0.50), 2),
        "p90": round(1000 * percentile(values, 0.90), 2),
        "p99": round(1000 * percentile(values, 0.99), 2),
        "max": round(1000 * values[-1], 2),
    }
