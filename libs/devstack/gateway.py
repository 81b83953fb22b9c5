"""The local gateway: the web console's files and every service's API on one address.

``make up`` runs it (``python -m devstack.gateway``) in front of the services' web
servers, as nginx does in Compose (``deploy/nginx/nginx.conf``, the same routes): the console
then calls ``/api/...`` on its own origin, with no CORS. ``/api/dead-letters/<service>/...``
reaches ``/api/dead-letters/...`` of that service, which every service mounts for its own queue.
Responses are streamed through; a service that is down or slow becomes a 503/504 JSON error
with a plain message, never a hung or empty page.
"""

from __future__ import annotations

import argparse
import http.client
import json
import mimetypes
import signal
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from service_runtime.settings import REPO_ROOT

# The first path segment under /api/ → the service that owns it.
ROUTES: dict[str, str] = {
    "products": "inventory",
    "categories": "inventory",
    "warehouses": "inventory",
    "stock-transfers": "inventory",
    "backorders": "inventory",
    "reservations": "inventory",
    "orders": "orders",
    "returns": "orders",
    "users": "user-notification",
    "notifications": "user-notification",
}
PER_SERVICE_PREFIX = "dead-letters"  # mounted by every service: the service's name comes next
CONSOLE_DIR = REPO_ROOT / "console"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0
MAX_BODY_BYTES = 1024 * 1024
CHUNK_BYTES = 64 * 1024
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "date",
        "server",
    }
)
CONSOLE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
}
NOT_FOUND_PAGE = b'<!doctype html><title>Not found</title><p>No such page. <a href="/">Console</a>'
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css"}


def route(path: str, services: set[str]) -> tuple[str, str] | None:
    """(service, path on that service) for an API path; None for anything not proxied."""
    parts = path.split("/")
    if len(parts) < 3 or parts[0] or parts[1] != "api" or {".", ".."} & set(parts):
        return None
    prefix = parts[2]
    if prefix in ROUTES and ROUTES[prefix] in services:
        return ROUTES[prefix], path
    if prefix == PER_SERVICE_PREFIX and len(parts) >= 4 and parts[3] in services:
        return parts[3], f"/api/{PER_SERVICE_PREFIX}/" + "/".join(parts[4:])
    return None


class GatewayServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], upstreams: dict[str, str], console: Path):
        super().__init__(address, GatewayHandler)
        self.upstreams = upstreams
        self.console = console.resolve()


class GatewayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the console polls an order every 300 ms
    server: GatewayServer

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _handle(self) -> None:
        split = urlsplit(self.path)
        if split.path == "/gateway/health":
            self._send_bytes(200, b"ok\n", "text/plain")
            return
        target = route(split.path, set(self.server.upstreams))
        if target is not None:
            service, upstream_path = target
            query = f"?{split.query}" if split.query else ""
            self._proxy(service, upstream_path + query)
        elif split.path == "/api" or split.path.startswith("/api/"):
            self._send_error(404, "Not found.", "not_found")
        else:
            self._static(split.path)

    # --- the APIs ---------------------------------------------------------------------------
    def _proxy(self, service: str, path: str) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._send_error(411, "Send the request body with a Content-Length.", "length_required")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._send_error(400, "The Content-Length header is not a number.", "bad_request")
            self.close_connection = True
            return
        if length > MAX_BODY_BYTES:
            self._send_error(413, "The request body is too large.", "too_large")
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else None
        upstream = urlsplit(self.server.upstreams[service])
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers.update(
            {
                "Host": upstream.netloc,
                "X-Forwarded-For": self.client_address[0],
                "X-Forwarded-Host": self.headers.get("Host", ""),
                "X-Forwarded-Proto": "http",
                "X-Request-ID": self.headers.get("X-Request-ID") or uuid.uuid4().hex,
            }
        )
        if body is not None:
            headers["Content-Length"] = str(len(body))
        connection = http.client.HTTPConnection(
            upstream.hostname or "127.0.0.1", upstream.port or 80, timeout=CONNECT_TIMEOUT
        )
        try:
            try:
                connection.connect()
                assert connection.sock is not None
                connection.sock.settimeout(READ_TIMEOUT)
                connection.request(self.command, path, body=body, headers=headers)
                response = connection.getresponse()
            except TimeoutError:
                self._send_error(
                    504,
                    f"The {service} service took too long to answer. Try again in a moment.",
                    "service_timeout",
                )
                return
            except (OSError, http.client.HTTPException):
                self._send_error(
                    503,
                    f"The {service} service is unavailable right now. Try again in a moment.",
                    "service_unavailable",
                )
                return
            self._relay(response)
        finally:
            connection.close()

    def _relay(self, response: http.client.HTTPResponse) -> None:
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        length = response.getheader("Content-Length")
        chunked = length is None and self.command != "HEAD" and response.status not in (204, 304)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif length is not None:
            self.send_header("Content-Length", length)
        self.end_headers()
        try:
            while chunk := response.read1(CHUNK_BYTES):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True  # the service or the browser went away mid-answer

    # --- the console ------------------------------------------------------------------------
    def _static(self, path: str) -> None:
        if self.command not in ("GET", "HEAD"):
            self._send_error(405, "Method not allowed.", "method_not_allowed")
            return
        console = self.server.console
        file = (console / (path.lstrip("/") or "index.html")).resolve()
        if file.is_dir():
            file = file / "index.html"
        if not file.is_relative_to(console) or not file.is_file():
            self._send_bytes(404, NOT_FOUND_PAGE, "text/html")
            return
        kind = TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0] or "text/plain"
        self._send_bytes(200, file.read_bytes(), kind, CONSOLE_HEADERS)

    # --- answers ----------------------------------------------------------------------------
    def _send_error(self, status: int, detail: str, code: str) -> None:
        body = json.dumps({"detail": detail, "code": code}).encode()
        self._send_bytes(status, body, "application/json")

    def _send_bytes(
        self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None
    ) -> None:
        if kind.startswith("text/") and "charset" not in kind:
            kind += "; charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stdout.write(f"{self.address_string()} {format % args}\n")
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bind", default="127.0.0.1:8000", help="host:port to listen on")
    parser.add_argument("--console", type=Path, default=CONSOLE_DIR, help="the console's files")
    parser.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="SERVICE=URL",
        help="a service's web server, e.g. inventory=http://127.0.0.1:8001 (repeat)",
    )
    args = parser.parse_args(argv)
    upstreams = dict(item.split("=", 1) for item in args.upstream)
    host, _, port = args.bind.rpartition(":")
    server = GatewayServer((host or "127.0.0.1", int(port)), upstreams, args.console)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    print(f"gateway listening on http://{args.bind}/ for {', '.join(sorted(upstreams))}")
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
