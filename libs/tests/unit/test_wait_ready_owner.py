"""``LocalSystem.wait_ready`` takes an HTTP answer for a started server only when the answer
comes from that server: another program's server on the port (a port taken between choosing it
and binding it) once made a fault-injection scenario send its requests to the wrong service."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devstack import system
from devstack.system import LocalSystem, ManagedProcess, service_spec


class NotFound(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(404)
        self.end_headers()
        self.wfile.write(b'{"detail": "Not found.", "code": "not_found"}')

    def log_message(self, *args: object) -> None:
        return None


def _web(port: int, argv: list[str]) -> tuple[LocalSystem, ManagedProcess]:
    inventory = service_spec("inventory")
    managed = ManagedProcess(inventory, "web", argv, dict(os.environ), cwd=system.REPO_ROOT)
    local = LocalSystem(ports={"inventory": port}, processes=[managed])
    return local, managed


@pytest.fixture
def foreign_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_another_programs_server_on_the_port_is_not_taken_for_ours(foreign_port: int) -> None:
    local, managed = _web(foreign_port, [sys.executable, "-c", "import time; time.sleep(30)"])
    managed.start()
    try:
        began = time.monotonic()
        with pytest.raises(RuntimeError, match="another program's server answers"):
            local._wait_answers(service_spec("inventory"), time.monotonic() + 2)
        assert time.monotonic() - began >= 2  # it waited for ours, in vain
    finally:
        managed.stop()


def test_our_own_server_is_ready_as_soon_as_it_answers() -> None:
    held = system.hold_port()
    port = held.getsockname()[1]
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    local, managed = _web(port, argv)
    managed.start()
    try:
        local._wait_answers(service_spec("inventory"), time.monotonic() + 20)
        assert system.listens_on(managed.process.pid, port)  # type: ignore[union-attr]
    finally:
        managed.stop()
        held.close()
