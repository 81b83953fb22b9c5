"""Two gunicorn masters started at once with the services' configuration: neither takes over
a control socket from the other (gunicorn's default is one fixed path per user)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LIBS = Path(__file__).resolve().parents[2]
APP = (
    "def application(environ, start_response):\n"
    "    start_response('200 OK', [])\n"
    "    return [b'ok']\n"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                return bool(response.read() == b"ok")
        except OSError:
            time.sleep(0.1)
    return False


@contextmanager
def _masters(tmp_path: Path, extra: list[dict[str, str]]) -> Iterator[list[int]]:
    (tmp_path / "app.py").write_text(APP)
    home = tmp_path / "home"
    home.mkdir()
    ports = [_free_port() for _ in extra]
    processes = []
    try:
        for port, own in zip(ports, extra, strict=True):
            unset = {"XDG_RUNTIME_DIR", "GUNICORN_CONTROL_SOCKET"}
            env = {k: v for k, v in os.environ.items() if k not in unset}
            env.update(
                HOME=str(home),
                PYTHONPATH=os.pathsep.join([str(tmp_path), str(LIBS)]),
                PROMETHEUS_MULTIPROC_DIR=str(tmp_path / f"metrics-{port}"),
                **own,
            )
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "gunicorn",
                        "app:application",
                        "--config",
                        "python:service_runtime.gunicorn_conf",
                        "--bind",
                        f"127.0.0.1:{port}",
                        "--workers",
                        "1",
                    ],
                    cwd=tmp_path,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        deadline = time.monotonic() + 30
        assert all(_answers(port, deadline) for port in ports)
        time.sleep(0.5)  # gunicorn opens its control socket once the arbiter runs
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=15)


def test_by_default_no_master_opens_the_shared_control_socket(tmp_path: Path) -> None:
    with _masters(tmp_path, [{}, {}]):
        default = tmp_path / "home" / ".gunicorn" / "gunicorn.ctl"
        assert not default.exists()
        assert not list((tmp_path / "home").rglob("*.ctl"))


def test_masters_given_their_own_paths_each_keep_their_socket(tmp_path: Path) -> None:
    paths = [tmp_path / "var" / "a.ctl", tmp_path / "var" / "b.ctl"]
    paths[0].parent.mkdir()
    with _masters(tmp_path, [{"GUNICORN_CONTROL_SOCKET": str(p)} for p in paths]):
        for path in paths:
            assert path.is_socket()
            with socket.socket(socket.AF_UNIX) as client:
                client.connect(str(path))  # a master listens on it, not a stale file
        assert not (tmp_path / "home" / ".gunicorn" / "gunicorn.ctl").exists()
