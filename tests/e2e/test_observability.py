"""Logs that follow an order, and one trace across the services, over the real processes.

Every process writes its output to its own file under the system's log directory (what
``make up`` prints with a label in front): one JSON object per line.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from devstack.system import SERVICES
from tests.e2e.client import Api
from tests.e2e.conftest import E2E

# service, process role: the processes an order's story passes through
ORDER_PATH = (
    ("orders", "web"),
    ("orders", "run_consumer"),
    ("inventory", "run_consumer"),
    ("user-notification", "run_consumer"),
)

# The services' web servers and workers, which log through service_runtime.logging.
JSON_ROLES = {"web", "run_consumer", "run_relay", "run_order_deadlines"}


def _log_file(e2e: E2E, service: str, role: str) -> Path:
    assert e2e.system.log_dir is not None
    return e2e.system.log_dir / f"{service}.{role}.log"


def _lines_with(path: Path, needle: str) -> list[str]:
    return [line for line in path.read_text().splitlines() if needle in line]


def _json(line: str, path: Path) -> dict[str, Any]:
    try:
        parsed = json.loads(line)
    except ValueError as exc:
        raise AssertionError(f"{path.name}: not a JSON line: {line!r}") from exc
    assert isinstance(parsed, dict), line
    return parsed


def _place_with_trace(customer: Api, product_id: int, headers: dict[str, str]) -> requests.Response:
    """POST the order, retried (same key) until the orders service knows the product."""
    headers = {**headers, "Idempotency-Key": str(uuid.uuid4())}
    body = {"lines": [{"product_id": product_id, "quantity": 1}]}
    deadline = time.monotonic() + 15
    while True:
        response = customer.post(f"{customer.orders}/api/orders/", body, headers)
        if response.status_code != 400 or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def _wait_for_story(e2e: E2E, order_id: str, timeout: float = 20.0) -> dict[str, list[str]]:
    """The lines naming the order in each process of its path, once every one has some."""
    deadline = time.monotonic() + timeout
    while True:
        found = {
            f"{service}.{role}": _lines_with(_log_file(e2e, service, role), order_id)
            for service, role in ORDER_PATH
        }
        if all(found.values()):
            return found
        if time.monotonic() > deadline:
            missing = [name for name, lines in found.items() if not lines]
            raise AssertionError(f"no log line names order {order_id} in {missing}")
        time.sleep(0.1)


def test_grepping_an_order_id_shows_its_path_through_every_service_in_one_trace(
    e2e: E2E, staff: Api, customer: Api
) -> None:
    trace_id = secrets.token_hex(16)
    request_id = f"e2e-{uuid.uuid4().hex[:12]}"
    product = staff.create_product(stock=5)
    response = _place_with_trace(
        customer,
        product["id"],
        {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01", "X-Request-ID": request_id},
    )
    assert response.status_code == 202, response.text
    assert response.headers["X-Request-ID"] == request_id
    assert response.headers["traceresponse"].split("-")[1] == trace_id
    order_id = response.json()["id"]
    assert customer.wait_for_status(order_id, {"CONFIRMED", "REJECTED"})["status"] == "CONFIRMED"

    story = _wait_for_story(e2e, order_id)
    parsed: dict[str, list[dict[str, Any]]] = {}
    for (service, role), (name, lines) in zip(ORDER_PATH, story.items(), strict=True):
        path = _log_file(e2e, service, role)
        parsed[name] = [_json(line, path) for line in lines]
        for line in parsed[name]:
            assert line["service"] == service, line
            assert line["correlation_id"], line
            assert line["ts"] and line["level"] and line["logger"] and line["message"], line

    # orders' web server: the placement, with the order id as the correlation id of its events,
    # in the caller's trace and with the caller's request id
    [placed] = [x for x in parsed["orders.web"] if "placed" in x["message"]]
    assert placed["correlation_id"] == order_id
    assert placed["request_id"] == request_id
    assert placed["trace_id"] == trace_id

    # the trace went on through the outbox and the broker into every consumer
    [reserved] = [x for x in parsed["inventory.run_consumer"] if "reserved" in x["message"]]
    assert reserved["trace_id"] == trace_id
    assert reserved["correlation_id"] == order_id
    assert reserved["message_id"]
    [confirmed] = [x for x in parsed["orders.run_consumer"] if "confirmed" in x["message"]]
    assert confirmed["trace_id"] == trace_id
    notified = [x for x in parsed["user-notification.run_consumer"] if "confirmed" in x["message"]]
    assert notified and all(x["trace_id"] == trace_id for x in notified)
    assert reserved["message_id"] != confirmed["message_id"]


def test_the_access_log_is_json_with_the_request_id_and_trace(e2e: E2E, customer: Api) -> None:
    trace_id = secrets.token_hex(16)
    request_id = f"e2e-{uuid.uuid4().hex[:12]}"
    response = requests.get(
        f"{customer.orders}/api/orders/",
        headers={
            **customer._headers(),
            "X-Request-ID": request_id,
            "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
        },
        timeout=10,
    )
    assert response.status_code == 200
    path = _log_file(e2e, "orders", "web")
    deadline = time.monotonic() + 10
    while not (lines := _lines_with(path, request_id)) and time.monotonic() < deadline:
        time.sleep(0.1)
    access = [x for x in (_json(line, path) for line in lines) if x["logger"] == "gunicorn.access"]
    assert access, lines
    assert access[0]["correlation_id"] == request_id
    assert access[0]["trace_id"] == trace_id
    assert access[0]["http_status"] == 200 and access[0]["http_method"] == "GET"


def test_every_line_of_the_services_processes_is_a_json_object_naming_its_service(
    e2e: E2E,
) -> None:
    files = [
        _log_file(e2e, process.service.name, process.role)
        for process in e2e.system.processes
        if process.service in SERVICES and process.role in JSON_ROLES
    ]
    assert {p.name for p in files} >= {f"{s}.{r}.log" for s, r in ORDER_PATH}
    for path in files:
        service = path.name.split(".")[0]
        for line in path.read_text().splitlines():
            if line.strip():
                parsed = _json(line, path)
                assert parsed["service"] == service, (path.name, line)
                assert {"ts", "level", "logger", "message", "correlation_id"} <= parsed.keys()
