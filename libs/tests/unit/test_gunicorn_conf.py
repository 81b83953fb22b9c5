"""What every service's gunicorn does to each worker once the service is loaded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LIBS = Path(__file__).resolve().parents[2]


def test_a_loaded_worker_sets_what_it_holds_aside_from_the_collector(tmp_path: Path) -> None:
    # In a child process: the settings module prepares Prometheus' directory on import, and
    # freezing is for the rest of the process's life.
    script = (
        "import gc; from service_runtime import gunicorn_conf as c; "
        "before = gc.get_freeze_count(); c.post_worker_init(None); "
        "print(before, gc.get_freeze_count())"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={
            **os.environ,
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            "PYTHONPATH": str(LIBS),
        },
        capture_output=True,
        text=True,
        check=True,
    )
    before, after = map(int, result.stdout.split())
    assert before == 0 and after > 1000


def _hooks_in_a_child(tmp_path: Path, publish_thread: bool) -> list[str]:
    """Run the worker hooks in a child process with Django configured as a service would be;
    what the sender thread was after each."""
    script = (
        "import django; from django.conf import settings; "
        f"settings.configure(MESSAGING_PUBLISH_THREAD={publish_thread}, "
        "INSTALLED_APPS=['messaging']); django.setup(); "
        "from service_runtime import gunicorn_conf as c; from messaging import after_commit; "
        "alive = lambda: str(bool(after_commit._sender._thread "
        "and after_commit._sender._thread.is_alive())); "
        "c.post_worker_init(None); print(alive()); c.worker_exit(None, None); print(alive())"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={
            **os.environ,
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            "PYTHONPATH": str(LIBS),
        },
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()


def test_a_loaded_worker_publishes_on_a_sender_thread_until_it_exits(tmp_path: Path) -> None:
    assert _hooks_in_a_child(tmp_path, publish_thread=True) == ["True", "False"]


def test_without_the_setting_a_worker_publishes_in_its_requests(tmp_path: Path) -> None:
    assert _hooks_in_a_child(tmp_path, publish_thread=False) == ["False", "False"]
