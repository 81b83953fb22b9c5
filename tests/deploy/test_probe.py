"""deploy/docker/probe.py: the containers' health checks."""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.deploy.manifests import DEPLOY


def load_probe() -> ModuleType:
    spec = importlib.util.spec_from_file_location("probe", DEPLOY / "docker" / "probe.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


probe = load_probe()

PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 0 1 1
   1: 0A000005:C350 0A000002:1628 01 00000000:00000000 02:000A7B2C 00000000 10001 0 2 2
   2: 0A000005:C352 0A000003:1538 06 00000000:00000000 00:00000000 00000000     0 0 0 3
"""


class _Answer(BaseHTTPRequestHandler):
    """200 at /health/live, 503 at /health/ready (a dependency is down), 404 elsewhere."""

    def do_GET(self) -> None:
        self.send_response({"/health/live": 200, "/health/ready": 503}.get(self.path, 404))
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class TestHttp:
    def test_a_2xx_answer_is_healthy(self, http_server: str) -> None:
        assert probe.main(["http", f"{http_server}/health/live"]) == 0

    def test_an_error_status_is_unhealthy(self, http_server: str) -> None:
        assert probe.main(["http", f"{http_server}/health/ready"]) == 1  # 503: not ready
        assert probe.main(["http", f"{http_server}/api/"]) == 1

    def test_no_answer_is_unhealthy(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]  # bound but not listening: connection refused
            assert probe.main(["http", f"http://127.0.0.1:{port}/api/"]) == 1


class TestHeartbeat:
    def test_a_fresh_heartbeat_is_healthy(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        beat = tmp_path / "worker.heartbeat"
        beat.write_text("{}")
        monkeypatch.setenv("WORKER_HEARTBEAT_FILE", str(beat))
        assert probe.main(["heartbeat"]) == 0
        assert probe.main(["heartbeat", "30"]) == 0

    def test_a_stale_or_missing_heartbeat_is_unhealthy(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        beat = tmp_path / "worker.heartbeat"
        monkeypatch.setenv("WORKER_HEARTBEAT_FILE", str(beat))
        assert probe.main(["heartbeat", "30"]) == 1
        beat.write_text("{}")
        then = time.time() - 45
        os.utime(beat, (then, then))
        assert probe.main(["heartbeat", "30"]) == 1
        assert probe.main(["heartbeat", "60"]) == 0

    def test_reports_why(self, tmp_path: Path) -> None:
        assert probe.heartbeat_problem("", 30) == "WORKER_HEARTBEAT_FILE is not set"
        assert "no heartbeat" in str(probe.heartbeat_problem(str(tmp_path / "none"), 30))


class TestConnected:
    def test_only_established_connections_count(self) -> None:
        # 0x1628 = 5672 (established); 0x1538 = 5432 is in TIME_WAIT; 0x1F90 is listening.
        assert probe.established_remote_ports([PROC_NET_TCP]) == {5672}

    def test_ports_come_from_the_urls(self) -> None:
        assert probe.port_of("amqp://u:p@rabbitmq/%2F") == 5672
        assert probe.port_of("postgres://u:p@postgres/db") == 5432
        assert probe.port_of("postgres://u:p@db:6543/db") == 6543

    def test_reports_what_is_missing(self) -> None:
        env = {"AMQP_URL": "amqp://u:p@rabbitmq:5672/%2F"}
        assert probe.missing_connections(["amqp"], env, {5672}) == []
        assert probe.missing_connections(["amqp", "database"], env, {5672}) == [
            "DATABASE_URL is not set"
        ]
        assert probe.missing_connections(["amqp"], env, {5432}) == [
            "no connection to amqp (port 5672)"
        ]

    def test_sees_a_real_established_connection(self) -> None:
        with socket.create_server(("127.0.0.1", 0)) as server:
            port = server.getsockname()[1]
            with socket.create_connection(("127.0.0.1", port)):
                assert port in probe.established_remote_ports(probe.read_tables())

    def test_unknown_usage_is_an_error(self) -> None:
        assert probe.main(["connected", "redis"]) == 2
        assert probe.main([]) == 2
