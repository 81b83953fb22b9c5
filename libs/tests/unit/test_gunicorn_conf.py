"""What every service's gunicorn does to each worker once the service is loaded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LIBS = Path(__file__).resolve().parents[2]


def _printed_in_a_child(tmp_path: Path, script: str, **env: str) -> list[str]:
    """What ``script`` prints, run in a child process: the settings module prepares
    Prometheus' directory on import, and freezing is for the rest of the process's life."""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={
            **os.environ,
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            "PYTHONPATH": str(LIBS),
            **env,
        },
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()


def test_a_loaded_worker_sets_what_it_holds_aside_from_the_collector(tmp_path: Path) -> None:
    script = (
        "import gc; from service_runtime import gunicorn_conf as c; "
        "before = gc.get_freeze_count(); c.post_worker_init(None); "
        "print(before, gc.get_freeze_count())"
    )
    before, after = map(int, _printed_in_a_child(tmp_path, script))
    assert before == 0 and after > 1000


def test_a_loaded_worker_has_its_url_patterns_before_its_first_request(tmp_path: Path) -> None:
    # Django imports the URL configuration (views, serializers, the schema generator) on the
    # first request it resolves, and builds reverse()'s map on the first reverse(): a worker's
    # first request would pay for both.
    script = (
        "import sys, django; django.setup(); "
        "from django.urls import get_resolver; "
        "from service_runtime import gunicorn_conf as c; "
        "before = 'tests.urls' in sys.modules, get_resolver()._populated; "
        "c.post_worker_init(None); "
        "print(*before, 'tests.urls' in sys.modules, get_resolver()._populated)"
    )
    printed = _printed_in_a_child(tmp_path, script, DJANGO_SETTINGS_MODULE="tests.settings")
    assert printed == ["False", "False", "True", "True"]
