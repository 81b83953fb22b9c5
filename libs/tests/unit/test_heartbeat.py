"""Worker readiness: the heartbeat file and ``manage.py worker_health``; the database check."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from django.core.management import call_command

from messaging import worker
from messaging.worker import HEARTBEAT_ENV, Heartbeat, heartbeat_age


def age_by(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


class TestHeartbeat:
    def test_beats_at_most_every_interval(self, tmp_path: Path) -> None:
        path = tmp_path / "beat"
        heartbeat = Heartbeat(path, every=60)
        heartbeat.beat()
        age_by(path, 10)
        heartbeat.beat()  # too soon: not written again
        age = heartbeat_age(path)
        assert age is not None and age >= 9

    def test_clear_removes_the_beat(self, tmp_path: Path) -> None:
        heartbeat = Heartbeat(tmp_path / "beat", every=0)
        heartbeat.beat()
        assert heartbeat_age(tmp_path / "beat") is not None
        heartbeat.clear()
        assert heartbeat_age(tmp_path / "beat") is None

    def test_without_a_path_beats_nowhere(self) -> None:
        Heartbeat(None).beat()

    def test_each_beat_sets_the_heartbeat_metric_to_its_time(self, tmp_path: Path) -> None:
        # What the alert on a worker gone quiet reads (deploy/prometheus/alerts.yml).
        heartbeat = Heartbeat(tmp_path / "orders.run_worker-2", every=0)
        heartbeat.beat(1_700_000_000.0)
        gauge = worker.WORKER_HEARTBEAT.labels("orders.run_worker-2")
        assert gauge._value.get() == 1_700_000_000.0
        heartbeat.beat(1_700_000_005.0)
        assert gauge._value.get() == 1_700_000_005.0


class TestWorkerHealthCommand:
    @pytest.fixture
    def beat(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        path = tmp_path / "worker.heartbeat"
        monkeypatch.setenv(HEARTBEAT_ENV, str(path))
        return path

    def test_a_fresh_beat_is_ready(self, beat: Path) -> None:
        Heartbeat(beat).beat()
        call_command("worker_health", "--max-age", "30")  # no SystemExit: exit status 0

    def test_a_stale_beat_is_not_ready(self, beat: Path) -> None:
        Heartbeat(beat).beat()
        age_by(beat, 45)
        with pytest.raises(SystemExit) as exit_:
            call_command("worker_health", "--max-age", "30")
        assert exit_.value.code == 1

    def test_no_beat_is_not_ready(self, beat: Path) -> None:
        with pytest.raises(SystemExit) as exit_:
            call_command("worker_health")
        assert exit_.value.code == 1


class TestWorkerMetricsPort:
    def test_served_only_when_asked(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import socket
        import urllib.request

        import messaging.metrics  # noqa: F401 - what a worker has imported by then
        from messaging.worker import METRICS_PORT_ENV, serve_metrics

        monkeypatch.delenv(METRICS_PORT_ENV, raising=False)
        assert serve_metrics() is None
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        monkeypatch.setenv(METRICS_PORT_ENV, str(port))
        assert serve_metrics() == port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert b"messaging_messages_consumed_total" in response.read()


def test_the_database_check_runs_only_after_an_idle_spell(monkeypatch: pytest.MonkeyPatch) -> None:
    checks: list[bool] = []
    monkeypatch.setattr(worker, "close_old_connections", lambda: checks.append(True))
    now = [100.0]
    monkeypatch.setattr(worker.time, "monotonic", lambda: now[0])
    database = worker.DatabaseCheck(idle_seconds=1.0)
    database.before_work()  # never answered yet: checked
    database.answered()
    now[0] += 0.5
    database.before_work()  # busy: the last statement just proved the connection
    database.answered()
    assert len(checks) == 1
    now[0] += 1.5
    database.before_work()  # idle for a while: checked again
    assert len(checks) == 2
    database.answered()
    database.forget()  # a database error: checked before the next unit of work
    database.before_work()
    assert len(checks) == 3


def test_the_local_runner_gives_each_worker_process_the_file_it_beats_in() -> None:
    from devstack.system import HEARTBEAT_ENV as RUNNER_HEARTBEAT_ENV
    from devstack.system import LocalSystem

    assert RUNNER_HEARTBEAT_ENV == HEARTBEAT_ENV
    system = LocalSystem(worker_processes=2)
    system.build_processes()
    beats = {p.label: Path(p.env[HEARTBEAT_ENV]).name for p in system.processes if p.role != "web"}
    assert beats["orders:run_worker"] == "orders.run_worker"
    assert beats["orders:run_worker-2"] == "orders.run_worker-2"
    assert len(set(beats.values())) == len(beats) == 6
