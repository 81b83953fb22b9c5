"""Which metric names exist, and which ones a PromQL expression reads: so that an alert rule or
a dashboard panel never watches a series nobody exports (it would stay silent forever)."""

from __future__ import annotations

import re
from functools import cache

from tests.deploy.manifests import REPO_ROOT

# Series that come from outside this repository's code, and from where.
EXTERNAL = {
    "up": "Prometheus itself, per scrape target",
    # rabbitmq_prometheus, /metrics/detailed?family=queue_coarse_metrics (labels vhost, queue)
    "rabbitmq_detailed_queue_messages": "RabbitMQ: messages in a queue, ready and unacked",
    "rabbitmq_detailed_queue_messages_ready": "RabbitMQ: messages ready for a consumer",
}

_DEFINITION = re.compile(
    r"\b(Counter|Gauge|Histogram|Summary|GaugeMetricFamily|CounterMetricFamily)\(\s*\"(\w+)\""
)
_SUFFIXES = {
    "Histogram": ("_bucket", "_sum", "_count"),
    "Summary": ("_sum", "_count"),
}
_KEYWORDS = frozenset(
    [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "and",
        "or",
        "unless",
        "inf",
        "nan",
    ]
)


@cache
def exported() -> frozenset[str]:
    """Every series name the services' code exports (tests excluded), suffixes included."""
    names: set[str] = set()
    sources = [*(REPO_ROOT / "libs").rglob("*.py"), *(REPO_ROOT / "services").rglob("*.py")]
    for path in sources:
        if "tests" in path.relative_to(REPO_ROOT).parts:
            continue
        for kind, name in _DEFINITION.findall(path.read_text()):
            names.add(name)
            names.update(name + suffix for suffix in _SUFFIXES.get(kind, ()))
    return frozenset(names)


def known() -> frozenset[str]:
    return exported() | frozenset(EXTERNAL)


def read_by(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, labels and keywords left out)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end() :].lstrip()
        if following.startswith("("):  # a function or an aggregation
            continue
        if match.group() in _KEYWORDS or re.fullmatch(r"\d+[smhdwy]", match.group()):
            continue
        names.add(match.group())
    return names
