"""JSON log lines with the context of the work at hand (service_runtime.logging)."""

from __future__ import annotations

import enum
import io
import json
import logging
import math
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from gunicorn.glogging import SafeAtoms
from pythonjsonlogger import json as jsonlogger

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


# The line, byte for byte. ``format`` does the library's work its own faster way (one C encoder
# made once, the timestamp and the extras found with less work): these tests hold its text to
# what python-json-logger's ``format`` and ``json.dumps`` write with the same fields.


class _LibraryPath(JsonFormatter):
    """The same fields, through python-json-logger's own ``format`` and ``json.dumps``."""

    format = jsonlogger.JsonFormatter.format
    serialize_log_record = jsonlogger.JsonFormatter.serialize_log_record


class _Request:
    log_context = {"correlation_id": "req-7", "request_id": "req-7", "trace_id": "c" * 32}


class _Shade(enum.Enum):
    DARK = "dark"


def _failed() -> Any:
    try:
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise ValueError("outer, ünïcode\nsecond line") from exc
    except ValueError:
        return sys.exc_info()


_ATOMS = {
    "m": "GET",
    "U": "/api/orders/1",
    "s": "404",
    "M": 3,
    "h": "10.0.0.1",
    "r": "GET /api/orders/1 HTTP/1.1",
    "{x-request-id}o": "req-2",
    "{traceresponse}o": f"00-{'d' * 32}-{'e' * 16}-01",
}

_RECORDS: dict[str, dict[str, Any]] = {
    "plain": {"msg": "order placed"},
    "args": {"msg": "order %s took %d ms", "args": ("o-1", 12)},
    "mapping args": {"msg": "%(order)s", "args": ({"order": "o-1"},)},
    "empty message": {"msg": ""},
    "not a string": {"msg": ValueError("boom")},
    "unicode and escapes": {"msg": 'Zoë ☕ "quoted"\n\ttab \\ \x00 \u2028', "name": "ördërs"},
    "a custom level": {"level": 25},
    "extras of odd types": {
        "extra": {
            "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            "amount": Decimal("1.50"),
            "id": uuid.UUID(int=7),
            "raw": b"\x00\xff",
            "tags": {"b"},
            "nested": {"list": [1, 2.5, None, True, Decimal("2")], 3: "int key"},
            "shade": _Shade.DARK,
            "nan": math.nan,
            "big": 10**30,
            "_private": 1,
            "empty": "",
        }
    },
    "extras keep their order": {"extra": {"zulu": 1, "alpha": 2, "mike": 3}},
    "explicit ids beat the bound ones": {
        "extra": {"correlation_id": "explicit", "message_id": "m-9", "order_id": "o-9"}
    },
    "empty explicit ids do not": {"extra": {"correlation_id": "", "message_id": None}},
    "explicit trace ids": {"extra": {"trace_id": "f" * 32, "span_id": "0" * 16}},
    "a caller's service, ts, pid and exception": {
        "extra": {"service": "no", "ts": "no", "pid": "no", "exception": "no", "stack": "no"}
    },
    "a request's context": {"extra": {"request": _Request(), "status_code": 404}},
    "a request without context": {"extra": {"request": object(), "status_code": 500}},
    "an exception": {"exc_info": True, "extra": {"exception": "mine"}},
    "an already formatted exception": {"exc_text": "Traceback (most recent call last):\nE"},
    "a stack": {"stack_info": True},
    "an exception and a stack": {"exc_info": True, "stack_info": True},
    "a dict message": {"msg": {"order_id": "o-1", "level": "mine"}},
    "a dict message with its own traceback": {
        "msg": {"exc_info": "given", "stack_info": "given stack"},
        "exc_info": True,
    },
    "a gunicorn access line": {
        "name": "gunicorn.access",
        "msg": '"%(r)s" %(s)s',
        "args": (SafeAtoms(_ATOMS),),
    },
    "a gunicorn access line without headers": {
        "name": "gunicorn.access",
        "msg": '"%(r)s" %(s)s',
        "args": (SafeAtoms({**_ATOMS, "{x-request-id}o": "-", "{traceresponse}o": "-"}),),
    },
}


def _record(
    *,
    msg: Any = "order placed",
    args: Any = (),
    name: str = "orders.services",
    level: int = logging.INFO,
    exc_info: bool = False,
    exc_text: str | None = None,
    stack_info: bool = False,
    extra: dict[str, Any] | None = None,
) -> logging.LogRecord:
    record = logging.getLogger(name).makeRecord(
        name,
        level,
        __file__,
        7,
        msg,
        args,
        _failed() if exc_info else None,
        "handle",
        extra,
        "Stack (most recent call last):\n  in a test" if stack_info else None,
    )
    record.created = 1767225599.9996  # rounds to 2025-12-31T23:59:59.999
    record.exc_text = exc_text
    return record


@pytest.mark.parametrize("case", list(_RECORDS))
@pytest.mark.parametrize("where", ["outside", "bound", "in a span"])
def test_a_line_is_what_python_json_logger_writes(case: str, where: str, spans: Any) -> None:
    def both() -> tuple[str, str]:
        ours = JsonFormatter(service="orders").format(_record(**_RECORDS[case]))
        theirs = _LibraryPath(service="orders").format(_record(**_RECORDS[case]))
        return ours, theirs

    if where == "outside":
        ours, theirs = both()
    else:
        with bind(correlation_id="order-1", message_id="m-1", request_id="r-1", zone="ü"):
            if where == "bound":
                ours, theirs = both()
            else:
                with tracing.tracer().start_as_current_span("work"):
                    ours, theirs = both()
    assert ours == theirs
    assert '"ts": "2025-12-31T23:59:59.999Z"' in ours


def test_the_fields_and_their_order(spans: Any) -> None:
    with (
        bind(correlation_id="order-1", message_id="m-1", request_id="r-1"),
        tracing.tracer().start_as_current_span("work") as span,
    ):
        record = _record(
            msg="order %s: %s",
            args=("o-1", "réservé"),
            exc_info=True,
            stack_info=True,
            extra={
                "request": _Request(),
                "message_id": "m-2",
                "amount": Decimal("1.50"),
                "service": "no",
                "attempt": 2,
            },
        )
        line = JsonFormatter(service="orders").format(record)
    context = span.get_span_context()
    assert record.exc_info is not None
    expected = [
        ("ts", "2025-12-31T23:59:59.999Z"),
        ("level", "INFO"),
        ("service", "orders"),
        ("logger", "orders.services"),
        ("message", "order o-1: réservé"),
        ("correlation_id", "order-1"),
        ("message_id", "m-2"),
        ("trace_id", format(context.trace_id, "032x")),
        ("span_id", format(context.span_id, "016x")),
        ("request_id", "r-1"),
        ("amount", "1.50"),
        ("attempt", 2),
        ("pid", os.getpid()),
        ("exception", logging.Formatter().formatException(record.exc_info)),
        ("stack", "Stack (most recent call last):\n  in a test"),
    ]
    assert list(json.loads(line).items()) == expected
    assert line == json.dumps(dict(expected), ensure_ascii=False)


@pytest.mark.parametrize(
    ("case", "keys"),
    [
        ("plain", ["pid"]),
        ("extras keep their order", ["zulu", "alpha", "mike", "pid"]),
        ("a request's context", ["request_id", "trace_id", "status_code", "pid"]),
        ("a caller's service, ts, pid and exception", ["pid", "exception", "stack"]),
        ("an exception and a stack", ["pid", "exception", "stack"]),
        (
            "a gunicorn access line",
            [
                "http_method",
                "http_path",
                "http_status",
                "duration_ms",
                "remote_addr",
                "request_id",
                "trace_id",
                "span_id",
                "pid",
            ],
        ),
    ],
)
def test_the_keys_after_the_core_ones_and_their_order(case: str, keys: list[str]) -> None:
    line = JsonFormatter(service="orders").format(_record(**_RECORDS[case]))
    assert list(json.loads(line)) == [*CORE_FIELDS, *keys]


@pytest.mark.parametrize(
    "created",
    [0.0, 0.0005, 0.9994999, 0.9995, 0.9999994, 0.9999995, 0.9999996, 1767225599.9999995]
    + [1767225599.999999 + step * 1e-7 for step in range(-20, 20)],
)
def test_the_timestamp_is_datetimes_text(created: float) -> None:
    expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    assert structured._timestamp(created) == expected.replace("+00:00", "Z")


def test_a_value_json_cannot_write_fails_as_it_did(captured: Any) -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference detected"):
        JsonFormatter(service="orders").format(_record(extra={"loop": loop}))


def test_the_trace_ids_follow_the_current_span(captured: Any, spans: Any) -> None:
    logger, stream = captured
    with tracing.tracer().start_as_current_span("outer") as outer:
        logger.info("outer")
        with tracing.tracer().start_as_current_span("inner") as inner:
            logger.info("inner")
        logger.info("outer again")
    logger.info("outside")
    ids = [(line.get("trace_id"), line.get("span_id")) for line in _lines(stream)]
    assert ids == [
        *[
            (
                format(span.get_span_context().trace_id, "032x"),
                format(span.get_span_context().span_id, "016x"),
            )
            for span in (outer, inner, outer)
        ],
        (None, None),
    ]
