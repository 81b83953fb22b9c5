"""JSON log lines with the context of the work at hand (service_runtime.logging)."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from gunicorn.glogging import SafeAtoms

from service_runtime import logging as structured
from service_runtime import tracing
from service_runtime.logging import CORE_FIELDS, JsonFormatter, TextFormatter, bind

LIBS = Path(__file__).resolve().parents[2]


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(service="orders"))
    logger = logging.getLogger("tests.structured")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_the_core_fields_first(captured: Any) -> None:
    logger, stream = captured
    logger.info("order %s placed", "o-1")
    [line] = _lines(stream)
    assert list(line)[: len(CORE_FIELDS)] == list(CORE_FIELDS)
    assert line["level"] == "INFO"
    assert line["service"] == "orders"
    assert line["logger"] == "tests.structured"
    assert line["message"] == "order o-1 placed"
    assert line["ts"].endswith("Z") and "T" in line["ts"]
    assert line["correlation_id"] is None and line["message_id"] is None
    assert "trace_id" not in line  # no span is current


def test_bound_context_is_on_every_line_inside_the_block_only(captured: Any) -> None:
    logger, stream = captured
    with bind(correlation_id="order-1", message_id="m-1", request_id=None):
        logger.info("inside")
        with bind(message_id="m-2", order_id="order-1"):
            logger.info("nested")
        logger.info("inside again")
    logger.info("outside")
    inside, nested, again, outside = _lines(stream)
    assert (inside["correlation_id"], inside["message_id"]) == ("order-1", "m-1")
    assert "request_id" not in inside  # None is not bound
    assert (nested["correlation_id"], nested["message_id"], nested["order_id"]) == (
        "order-1",
        "m-2",
        "order-1",
    )
    assert again["message_id"] == "m-1" and "order_id" not in again
    assert outside["correlation_id"] is None and outside["message_id"] is None


def test_context_does_not_leak_into_other_threads(captured: Any) -> None:
    logger, stream = captured
    with bind(correlation_id="mine"):
        thread = threading.Thread(target=logger.info, args=("from a thread",))
        thread.start()
        thread.join()
    [line] = _lines(stream)
    assert line["correlation_id"] is None


def test_extra_fields_are_added_and_an_explicit_correlation_id_wins(captured: Any) -> None:
    logger, stream = captured
    with bind(correlation_id="bound"):
        logger.info("x", extra={"order_id": "o-9", "correlation_id": "explicit", "service": "no"})
    [line] = _lines(stream)
    assert line["order_id"] == "o-9"
    assert line["correlation_id"] == "explicit"
    assert line["service"] == "orders"  # the formatter's, never a caller's


def test_multi_line_messages_and_tracebacks_stay_on_one_line(captured: Any) -> None:
    logger, stream = captured
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        logger.exception("failed:\n%s", "details")
    assert len(stream.getvalue().splitlines()) == 1
    [line] = _lines(stream)
    assert line["message"] == "failed:\ndetails"
    assert "ValueError: bad\nthing" in line["exception"]


def test_lines_inside_a_span_carry_its_trace_and_span_ids(captured: Any, spans: Any) -> None:
    logger, stream = captured
    with tracing.tracer().start_as_current_span("work") as span:
        logger.info("in a span")
    [line] = _lines(stream)
    context = span.get_span_context()
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")


def test_a_gunicorn_access_line_takes_its_context_from_the_response_headers() -> None:
    atoms = SafeAtoms(
        {
            "m": "POST",
            "U": "/api/orders/",
            "s": "202",
            "M": 12,
            "h": "127.0.0.1",
            "r": "POST /api/orders/ HTTP/1.1",
            "{x-request-id}o": "req-1",
            "{traceresponse}o": f"00-{'a' * 32}-{'b' * 16}-01",
        }
    )
    record = logging.LogRecord(
        "gunicorn.access", logging.INFO, "", 0, '"%(r)s" %(s)s', (atoms,), None
    )
    line = json.loads(JsonFormatter(service="orders").format(record))
    assert line["message"] == '"POST /api/orders/ HTTP/1.1" 202'
    assert line["correlation_id"] == "req-1"
    assert (line["trace_id"], line["span_id"]) == ("a" * 32, "b" * 16)
    assert (line["http_method"], line["http_path"], line["http_status"]) == (
        "POST",
        "/api/orders/",
        202,
    )
    assert line["duration_ms"] == 12


def test_text_format_is_one_readable_line_with_the_context() -> None:
    record = logging.LogRecord("orders.services", logging.INFO, "", 0, "order placed", (), None)
    with bind(correlation_id="order-1"):
        text = TextFormatter(service="orders").format(record)
    assert text.endswith(" orders INFO orders.services [correlation_id=order-1]: order placed")


@pytest.mark.parametrize(
    ("log_format", "formatter"), [("json", "JsonFormatter"), ("text", "TextFormatter")]
)
def test_log_format_chooses_the_formatter(log_format: str, formatter: str) -> None:
    config = structured.logging_config("orders", level="debug", log_format=log_format)
    assert config["formatters"]["structured"] == {
        "()": f"service_runtime.logging.{formatter}",
        "service": "orders",
    }
    assert config["root"]["level"] == "DEBUG"


def test_the_settings_log_json_by_default(settings: Any) -> None:
    assert settings.LOGGING_CONFIG == "service_runtime.logging.configure"
    formatter = settings.LOGGING["formatters"]["structured"]
    assert formatter["()"] == "service_runtime.logging.JsonFormatter"
    assert formatter["service"] == "libtest"
    assert "service_runtime.request_context.RequestContextMiddleware" in settings.MIDDLEWARE


def test_gunicorn_logs_through_the_same_formatter(tmp_path: Path) -> None:
    # In a child process: the gunicorn settings module prepares Prometheus' directory on import.
    script = (
        "import json; from service_runtime import gunicorn_conf as c; "
        "print(json.dumps(c.logconfig_dict))"
    )
    service_dir = tmp_path / "orders"
    service_dir.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    env.pop("SERVICE_NAME", None)
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=service_dir,
        env={**env, "PYTHONPATH": str(LIBS)},
        capture_output=True,
        text=True,
        check=True,
    )
    config = json.loads(result.stdout)
    assert config["formatters"]["structured"] == {
        "()": "service_runtime.logging.JsonFormatter",
        "service": "orders",  # the folder gunicorn runs in
    }
    for name in ("gunicorn.error", "gunicorn.access"):
        assert config["loggers"][name] == {
            "level": "INFO",
            "handlers": ["console"],
            "propagate": False,
        }


def test_a_django_request_line_after_the_middleware_takes_the_requests_context(
    captured: Any,
) -> None:
    logger, stream = captured

    class Request:
        log_context = {"correlation_id": "req-7", "request_id": "req-7", "trace_id": "c" * 32}

    logger.warning("Not Found: /api/", extra={"request": Request(), "status_code": 404})
    [line] = _lines(stream)
    assert (line["correlation_id"], line["request_id"], line["trace_id"]) == (
        "req-7",
        "req-7",
        "c" * 32,
    )
    assert line["status_code"] == 404
    assert "request" not in line


def test_a_plain_line_carries_the_core_fields_and_the_pid_only(captured: Any) -> None:
    logger, stream = captured
    logger.info("plain")
    [line] = _lines(stream)
    assert list(line) == [*CORE_FIELDS, "pid"]
    assert line["pid"] == os.getpid()


def test_values_json_cannot_hold_are_written_as_text_and_unicode_as_it_is(captured: Any) -> None:
    logger, stream = captured
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    logger.info(
        "Zoë ordered ☕",
        extra={"when": when, "amount": Decimal("1.50"), "who": "Zoë", "_private": 1},
    )
    assert "Zoë ordered ☕" in stream.getvalue()  # not \u-escaped
    [line] = _lines(stream)
    assert line["message"] == "Zoë ordered ☕"
    assert (line["when"], line["amount"], line["who"]) == (str(when), "1.50", "Zoë")
    assert line["_private"] == 1


def test_a_dict_message_is_logged_as_its_text(captured: Any) -> None:
    logger, stream = captured
    logger.info({"order_id": "o-1", "level": "mine"})
    [line] = _lines(stream)
    assert line["message"] == "{'order_id': 'o-1', 'level': 'mine'}"
    assert line["level"] == "INFO" and "order_id" not in line


def test_a_stack_and_an_already_formatted_exception_are_kept(captured: Any) -> None:
    logger, stream = captured
    logger.info("where am I", stack_info=True)
    record = logging.LogRecord("tests.structured", logging.ERROR, "", 0, "failed", (), None)
    record.exc_text = "Traceback (most recent call last):\nValueError: earlier"
    logger.handle(record)
    with_stack, with_text = _lines(stream)
    assert with_stack["stack"].startswith("Stack (most recent call last):")
    assert "exception" not in with_stack
    assert with_text["exception"] == record.exc_text


def test_an_extra_cannot_hide_the_exception(captured: Any) -> None:
    logger, stream = captured
    try:
        raise KeyError("k")
    except KeyError:
        logger.exception("lookup failed", extra={"exception": "mine"})
    [line] = _lines(stream)
    assert line["exception"].startswith("Traceback") and "KeyError: 'k'" in line["exception"]


def test_text_format_puts_the_traceback_under_the_line() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.LogRecord(
            "orders.services", logging.ERROR, "", 0, "failed", (), sys.exc_info()
        )
    first, *rest = TextFormatter(service="orders").format(record).splitlines()
    assert first.endswith(" orders ERROR orders.services: failed")
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "ValueError: bad"
