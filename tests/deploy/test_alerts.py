"""deploy/prometheus: the alert rules are valid (``promtool check``), each is unit-tested on
synthetic series (``promtool test rules``) both firing and staying quiet, and every rule reads
series that exist."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from saga_audit.compare import KINDS
from tests.deploy import metric_names
from tests.deploy.manifests import DEPLOY

PROMETHEUS = DEPLOY / "prometheus"
RULES = PROMETHEUS / "alerts.yml"
RULE_TESTS = PROMETHEUS / "alerts.test.yml"
# What must wake someone (issue 15): each topic and the alert that covers it.
REQUIRED = {
    "age of the oldest unsent outbox row": "OutboxEventsNotSent",
    "dead-letter queue depth": "DeadLetterQueueNotEmpty",
    "consumer backlog": "ConsumerBacklogHigh",
    "consumer backlog growth": "ConsumerBacklogGrowing",
    "audit drift": "SagaAuditDrift",
    "5xx rate": "HighServerErrorRate",
    "a worker's heartbeat gone": "WorkerHeartbeatGone",
}

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not installed (Debian: apt-get install prometheus; .ci/run does)",
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args],
        cwd=PROMETHEUS,  # the test file names its rule file relative to itself
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def rule_tests() -> list[dict[str, Any]]:
    return list(yaml.safe_load(RULE_TESTS.read_text())["tests"])


@needs_promtool
def test_the_rules_pass_promtool_check() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@needs_promtool
def test_the_compose_prometheus_configuration_passes_promtool_check() -> None:
    checked = promtool("check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


@needs_promtool
def test_the_rules_pass_their_unit_tests() -> None:
    tested = promtool("test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


@needs_promtool
def test_a_broken_rule_fails_its_unit_test(tmp_path: Any) -> None:
    # The unit tests would notice a threshold moved: the outbox alert at an hour, not 2 minutes.
    broken = RULES.read_text().replace(
        "(messaging_outbox_oldest_unsent_age_seconds) > 120",
        "(messaging_outbox_oldest_unsent_age_seconds) > 3600",
    )
    assert broken != RULES.read_text()
    (tmp_path / "alerts.yml").write_text(broken)
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    tested = subprocess.run(
        ["promtool", "test", "rules", RULE_TESTS.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert tested.returncode != 0
    assert "OutboxEventsNotSent" in tested.stdout + tested.stderr


def test_every_required_alert_exists_and_pages_or_tickets() -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    for topic, alert in REQUIRED.items():
        assert alert in by_name, topic
        assert by_name[alert]["labels"]["severity"] in {"page", "ticket"}, alert
        assert by_name[alert]["annotations"]["summary"], alert


def test_every_alert_is_tested_firing_and_quiet() -> None:
    cases: dict[str, list[list[Any]]] = {}
    for test in rule_tests():
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], []).append(case.get("exp_alerts") or [])
    for rule in rules():
        expected = cases.get(rule["alert"], [])
        assert any(expected), f"{rule['alert']}: no case where it fires"
        assert any(not alerts for alerts in expected), f"{rule['alert']}: no case where it is quiet"


def test_rules_read_only_series_that_exist() -> None:
    for rule in rules():
        unknown = metric_names.read_by(rule["expr"]) - metric_names.known()
        assert not unknown, f"{rule['alert']} reads {sorted(unknown)}, which nothing exports"


def test_the_synthetic_series_carry_labels_the_real_ones_have() -> None:
    # A rule tested on a job or a drift kind that never exists would pass its test and never
    # fire: the series' jobs are the scrape jobs, and the audit's kinds are the audit's own.
    scraped = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in scraped["scrape_configs"]}
    series = [entry["series"] for test in rule_tests() for entry in test.get("input_series", [])]
    assert series
    for text in series:
        labels = dict(re.findall(r'(\w+)="([^"]*)"', text))
        assert labels.get("job", next(iter(jobs))) in jobs, text
        if text.startswith("saga_audit_drift"):
            assert labels["kind"] in KINDS, text
            assert labels["job"] == "workers", text  # exported by the orders worker's job


def test_every_alert_is_explained_in_the_operations_guide() -> None:
    guide = (DEPLOY.parent / "docs" / "operations.md").read_text()
    section = guide.split("## Alerts", 1)[1].split("\n## ", 1)[0]
    for rule in rules():
        assert f"`{rule['alert']}`" in section, rule["alert"]


def test_ci_installs_promtool() -> None:
    ci = (DEPLOY.parent / ".ci" / "run").read_text()
    assert "apt-get install" in ci and " prometheus" in ci
