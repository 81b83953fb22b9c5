"""The token endpoint's failed-attempt limit, served as in production: one gunicorn master
with two sync workers, its default settings (SQLite and the file cache under ``var/``). The
workers share the count, so the account is refused after the limit, not after twice it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests

from devstack.stack import NO_ABUSE_LIMITS
from devstack.system import free_port
from service_runtime.settings import REPO_ROOT

SERVICE_DIR = REPO_ROOT / "services" / "user-notification"
USERNAME, PASSWORD = "limited-staff", "limited-staff-password-7"


@pytest.fixture(scope="module")
def user_notification(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    var = tmp_path_factory.mktemp("limits")
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CACHE_URL"}}
    env.update(
        {k: "" for k in NO_ABUSE_LIMITS},  # the service's defaults, whatever the shell says
        VAR_DIR=str(var),
        PYTHONUNBUFFERED="1",
        DJANGO_SUPERUSER_USERNAME=USERNAME,
        DJANGO_SUPERUSER_EMAIL="limited@example.test",
        DJANGO_SUPERUSER_PASSWORD=PASSWORD,
        PROMETHEUS_MULTIPROC_DIR=str(var / "metrics"),
    )
    for command in (["migrate", "--noinput"], ["ensure_superuser"]):
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=SERVICE_DIR, env=env, check=True
        )
    port = free_port(frozenset())
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--config",
            "python:service_runtime.gunicorn_conf",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--worker-class",
            "sync",
        ],
        cwd=SERVICE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/health/live", timeout=1).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or its workers still booting
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_forty_wrong_passwords_through_two_workers_are_refused_after_ten(
    user_notification: str,
) -> None:
    session = requests.Session()
    answers = []
    for n in range(40):
        response = session.post(
            f"{user_notification}/api/users/token/",
            json={"username": USERNAME, "password": f"wrong-{n}"},
            timeout=10,
        )
        answers.append(response.status_code)
    assert answers == [401] * 10 + [429] * 30  # the default: 10 per 15 minutes
    assert response.json()["code"] == "throttled"
    assert 1 <= int(response.headers["Retry-After"]) <= 900
    right = requests.post(
        f"{user_notification}/api/users/token/",
        json={"username": USERNAME, "password": PASSWORD},
        timeout=10,
    )
    assert right.status_code == 429  # until the window ends, even the right password
