"""The local gateway over real sockets: proxying, streaming, a service down or slow, the console."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from devstack import gateway


class Upstream(BaseHTTPRequestHandler):
    """A service that answers with what it received; /stream and /slow behave as named."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        if self.path.startswith("/api/orders/slow"):
            time.sleep(1.0)
        if self.path.startswith("/api/orders/stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Connection", "close")
            self.end_headers()
            for index in range(3):
                self.wfile.write(f"part {index}\n".encode())
                self.wfile.flush()
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "body": self.rfile.read(length).decode(),
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
        ).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Location", "/api/orders/1/")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(server: ThreadingHTTPServer) -> Iterator[int]:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def upstream_port() -> Iterator[int]:
    yield from _serve(ThreadingHTTPServer(("127.0.0.1", 0), Upstream))


@pytest.fixture
def console(tmp_path: Path) -> Path:
    folder = tmp_path / "console"
    (folder / "js").mkdir(parents=True)
    (folder / "index.html").write_text("<!doctype html><title>console</title>")
    (folder / "js" / "app.js").write_text("export {};")
    (tmp_path / "secret.txt").write_text("not for the browser")
    return folder


@pytest.fixture
def port(upstream_port: int, console: Path) -> Iterator[int]:
    upstreams = {
        "orders": f"http://127.0.0.1:{upstream_port}",
        "inventory": "http://127.0.0.1:1",  # nothing listens there: a service that is down
    }
    yield from _serve(gateway.GatewayServer(("127.0.0.1", 0), upstreams, console))


def request(
    port: int, method: str, path: str, body: bytes | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


class TestProxy:
    def test_passes_method_path_query_body_and_credentials(self, port: int) -> None:
        status, headers, body = request(
            port, "POST", "/api/orders/?a=1", b'{"x": 1}', Authorization="Bearer t"
        )
        assert status == 201
        assert headers["location"] == "/api/orders/1/"
        seen = json.loads(body)
        assert (seen["method"], seen["path"], seen["body"]) == (
            "POST",
            "/api/orders/?a=1",
            '{"x": 1}',
        )
        assert seen["headers"]["authorization"] == "Bearer t"
        assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
        assert seen["headers"]["x-request-id"]

    def test_dead_letters_go_to_the_named_service_without_its_name(self, port: int) -> None:
        status, _, body = request(port, "POST", "/api/dead-letters/orders/abc/replay/?x=1")
        assert status == 201
        assert json.loads(body)["path"] == "/api/dead-letters/abc/replay/?x=1"

    def test_a_response_without_length_is_streamed_through(self, port: int) -> None:
        status, headers, body = request(port, "GET", "/api/orders/stream")
        assert status == 200
        assert headers["transfer-encoding"] == "chunked"
        assert body == b"part 0\npart 1\npart 2\n"

    def test_a_service_that_is_down_is_a_503_in_plain_words(self, port: int) -> None:
        status, headers, body = request(port, "GET", "/api/products/")
        assert status == 503
        assert headers["content-type"].startswith("application/json")
        assert json.loads(body) == {
            "detail": "The inventory service is unavailable right now. Try again in a moment.",
            "code": "service_unavailable",
        }

    def test_a_service_too_slow_to_answer_is_a_504(
        self, port: int, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(gateway, "READ_TIMEOUT", 0.2)
        status, _, body = request(port, "GET", "/api/orders/slow")
        assert status == 504
        assert json.loads(body)["code"] == "service_timeout"

    def test_a_body_over_the_limit_is_refused(self, port: int) -> None:
        too_long = str(gateway.MAX_BODY_BYTES + 1)  # refused from the header, before the body
        status, _, body = request(
            port, "POST", "/api/orders/", b"{}", **{"Content-Length": too_long}
        )
        assert (status, json.loads(body)["code"]) == (413, "too_large")

    def test_a_length_that_is_not_a_number_is_refused(self, port: int) -> None:
        status, _, body = request(port, "POST", "/api/orders/", b"{}", **{"Content-Length": "x"})
        assert (status, json.loads(body)["code"]) == (400, "bad_request")

    def test_unknown_api_paths_are_a_json_404(self, port: int) -> None:
        status, headers, body = request(port, "GET", "/api/unknown/")
        assert (status, json.loads(body)["detail"]) == (404, "Not found.")
        assert headers["content-type"].startswith("application/json")


class TestConsole:
    def test_serves_the_page_and_its_modules_with_their_types(self, port: int) -> None:
        status, headers, body = request(port, "GET", "/")
        assert (status, body) == (200, b"<!doctype html><title>console</title>")
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert "default-src 'self'" in headers["content-security-policy"]
        status, headers, _ = request(port, "GET", "/js/app.js")
        assert (status, headers["content-type"]) == (200, "text/javascript; charset=utf-8")

    @pytest.mark.parametrize("path", ["/../secret.txt", "/js/../../secret.txt", "/missing.js"])
    def test_nothing_outside_the_console_folder(self, port: int, path: str) -> None:
        status, headers, body = request(port, "GET", path)
        assert status == 404
        assert b"secret" not in body and headers["content-type"].startswith("text/html")

    def test_only_reading_is_allowed(self, port: int) -> None:
        assert request(port, "POST", "/index.html")[0] == 405

    def test_health(self, port: int) -> None:
        assert request(port, "GET", "/gateway/health")[:3:2] == (200, b"ok\n")
