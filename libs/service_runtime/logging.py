"""Logs that follow an order: one JSON object per line, with the context of the work at hand.

Every line carries ``ts``, ``level``, ``service``, ``logger``, ``message``, ``correlation_id``
and ``message_id`` (``null`` when the line is about no request or message), and ``trace_id`` /
``span_id`` while an OpenTelemetry span is current. The context comes from :func:`bind`, a
``contextvars``-based context manager: the HTTP middleware binds the request's correlation id,
the consumer binds each message's ``correlation_id`` and ``id``, the relay each row's; for an
order's events the correlation id is the order id, so ``grep <order id>`` over the logs of all
processes shows the order's whole story. Anything else bound (``request_id``, ``order_id``) or
passed with ``extra=`` is added as a field too.

``LOG_FORMAT=text`` switches to one readable line per record, with the same context.
"""

from __future__ import annotations

import json
import logging
import logging.config
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from json.encoder import encode_basestring
from types import MappingProxyType, TracebackType
from typing import Any, cast

from opentelemetry import trace
from pythonjsonlogger import json as jsonlogger
from pythonjsonlogger.core import RESERVED_ATTRS

_EMPTY: Mapping[str, str] = MappingProxyType({})
_context: ContextVar[Mapping[str, str]] = ContextVar("service_runtime_log_context", default=_EMPTY)


def _c_encoder() -> Callable[[object, int], Iterable[str]] | None:
    """The C encoder ``json.dumps(..., default=str, ensure_ascii=False)`` makes for each call,
    without its check for circular references; None where there is none to make."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None  # pragma: no cover - a Python without ``_json``
    sample = {"a": [1, 2.5, None, True, "é\n"], "b": b"x"}
    try:
        # markers, default, encoder, indent, separators, sort_keys, skipkeys, allow_nan
        encode = make(None, str, encode_basestring, None, ": ", ", ", False, False, True)
        same = "".join(encode(sample, 0)) == json.dumps(sample, default=str, ensure_ascii=False)
    except TypeError:  # pragma: no cover - another Python's encoder
        return None
    return cast("Callable[[object, int], Iterable[str]]", encode) if same else None


# Made once and shared: it keeps no state between calls (without the markers of the check).
_encode_json = _c_encoder()

# The fields every JSON line starts with, in this order.
CORE_FIELDS = ("ts", "level", "service", "logger", "message", "correlation_id", "message_id")


@contextmanager
def bind(**fields: object) -> Iterator[Mapping[str, str]]:
    """Add ``fields`` to every log line written inside the block (in this thread or task).

    ``None`` values are skipped, so ``bind(correlation_id=maybe_none)`` keeps an outer value.
    Blocks nest; leaving one restores what was bound before it.
    """
    added = {name: str(value) for name, value in fields.items() if value is not None}
    token = _context.set(MappingProxyType({**_context.get(), **added}))
    try:
        yield _context.get()
    finally:
        _context.reset(token)


def bound() -> Mapping[str, str]:
    """What is bound right now."""
    return _context.get()


def current_correlation_id() -> str | None:
    return _context.get().get("correlation_id")


# The span context :func:`current_trace_ids` last saw, and its answer (a span context is
# immutable, and the lines of a message or request are written inside the same span).
_last_trace_ids: tuple[object, tuple[str, str] | None] = (None, None)


def current_trace_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` of the current span as lower-case hex, or None outside a span."""
    global _last_trace_ids
    span_context = trace.get_current_span().get_span_context()
    last_context, ids = _last_trace_ids
    if span_context is last_context:
        return ids
    ids = None
    if span_context.is_valid:
        ids = f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"
    _last_trace_ids = (span_context, ids)
    return ids


# The last second :func:`_timestamp` wrote, and its text up to the seconds.
_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def _timestamp(created: float) -> str:
    """``created`` as ``2026-01-02T03:04:05.678Z``: UTC, milliseconds truncated.

    The same text as ``datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")``
    with ``Z`` for ``+00:00`` (``created`` rounded half-even to microseconds first, as
    ``datetime`` does), for a fifth of the cost: the text up to the seconds is made once a second.
    """
    global _last_second
    seconds = int(created)
    micros = round((created - seconds) * 1e6)
    if micros >= 1_000_000:
        seconds += 1
        micros -= 1_000_000
    elif micros < 0:
        seconds -= 1
        micros += 1_000_000
    second, text = _last_second
    if second != seconds:
        text = datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None).isoformat()
        _last_second = (seconds, text)
    return text + _MILLISECONDS[micros // 1000]


_MILLISECONDS = tuple(f".{millis:03d}Z" for millis in range(1000))


def _trace_ids_from_traceparent(value: object) -> tuple[str, str] | None:
    parts = str(value).split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and len(parts[2]) == 16:
        return parts[1], parts[2]
    return None


def _gunicorn_access_fields(atoms: Mapping[str, Any]) -> dict[str, Any]:
    """Fields of a gunicorn access-log record, whose ``args`` are gunicorn's atoms.

    It is written after the request left Django (and its bound context), so the correlation id
    and the trace come from the response headers the middleware set.
    """
    fields: dict[str, Any] = {
        "http_method": atoms.get("m"),
        "http_path": atoms.get("U"),
        "http_status": _int_or_none(atoms.get("s")),
        "duration_ms": _int_or_none(atoms.get("M")),
        "remote_addr": atoms.get("h"),
    }
    request_id = atoms.get("{x-request-id}o", "-")
    if request_id not in (None, "-"):
        fields["correlation_id"] = request_id
        fields["request_id"] = request_id
    ids = _trace_ids_from_traceparent(atoms.get("{traceresponse}o", "-"))
    if ids:
        fields["trace_id"], fields["span_id"] = ids
    return fields


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


class JsonFormatter(jsonlogger.JsonFormatter):
    """One JSON object per record, on one line (newlines in messages and tracebacks escaped).

    A python-json-logger formatter: it formats the traceback (or takes ``exc_text``) and the
    stack, knows the LogRecord attributes that are not extras, and its ``json.dumps`` (with
    ``default=str``, unicode unescaped) is what the line is. :meth:`add_fields` chooses the
    fields: the core ones first, then trace, context and extras.

    A line is written per consumed message, so :meth:`format` does what the library's does
    for half the cost, with the same text byte for byte (``test_logging`` compares them): it
    encodes with a C encoder made once (``json.dumps`` makes one per line), and finds the
    timestamp, the trace ids and the extras with less work.
    """

    def __init__(self, service: str = "", **kwargs: Any) -> None:
        super().__init__(
            json_default=str,
            json_ensure_ascii=False,
            reserved_attrs=[*RESERVED_ATTRS, "taskName"],
            **kwargs,
        )
        self.service = service
        self._reserved = frozenset(self.reserved_attrs)
        self._asctime = "asctime" in self._required_fields
        # The library encodes with ``json.dumps(..., default=str, ensure_ascii=False)``, which
        # makes an encoder for each line: use the one made once, unless told otherwise.
        self._encode = (
            _encode_json
            if self.json_serializer is json.dumps
            and self.json_default is str
            and self.json_encoder is None
            and self.json_indent is None
            and not self.json_ensure_ascii
            else None
        )

    def format(self, record: logging.LogRecord) -> str:
        """What ``BaseJsonFormatter.format`` does, with the same effects on ``record``."""
        message_dict: dict[str, Any]
        if isinstance(record.msg, dict):
            message_dict = record.msg.copy()
            record.message = ""
        else:
            message_dict = {}
            record.message = record.getMessage()
        if self._asctime:
            record.asctime = self.formatTime(record, self.datefmt)
        if record.exc_info or record.exc_text or record.stack_info:
            if record.exc_info and not message_dict.get("exc_info"):
                message_dict["exc_info"] = self.formatException(record.exc_info)
            if not message_dict.get("exc_info") and record.exc_text:
                message_dict["exc_info"] = record.exc_text
            if record.stack_info and not message_dict.get("stack_info"):
                message_dict["stack_info"] = self.formatStack(record.stack_info)
        payload: dict[str, Any] = {}
        self.add_fields(payload, record, message_dict)
        return self.serialize_log_record(self.process_log_record(payload))

    def serialize_log_record(self, log_data: dict[str, Any]) -> str:
        if self._encode is not None:
            try:
                return self.prefix + "".join(self._encode(log_data, 0))
            except Exception:  # noqa: S110
                # A value it fails on (a circular one, one whose ``str`` raises) fails
                # ``json.dumps`` too, which raises what it always raised.
                pass
        return super().serialize_log_record(log_data)

    def add_fields(
        self, payload: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        context = _context.get()
        payload["ts"] = _timestamp(record.created)
        payload["level"] = record.levelname
        payload["service"] = self.service or None
        payload["logger"] = record.name
        # The library leaves ``message`` empty when ``msg`` is a dict: keep its text.
        payload["message"] = record.message or record.getMessage()
        payload["correlation_id"] = context.get("correlation_id")
        payload["message_id"] = context.get("message_id")
        ids = current_trace_ids()
        if ids:
            payload["trace_id"], payload["span_id"] = ids
        for name, value in context.items():
            payload.setdefault(name, value)
        attributes = record.__dict__
        reserved = self._reserved
        if not reserved.issuperset(attributes):  # there are ``extra=`` fields
            extras = [name for name in attributes if name not in reserved]
            if "request" in extras and (request := attributes["request"]) is not None:
                # Django's ``django.request`` lines are written after the middleware returned:
                # the context it bound is gone, but it left a copy on the request.
                for name, value in getattr(request, "log_context", {}).items():
                    if payload.get(name) is None:
                        payload[name] = value
            for name in extras:
                if name == "request":
                    continue
                if name == "service":
                    continue  # the formatter's own service wins over a caller's guess
                value = attributes[name]
                if name in ("correlation_id", "message_id", "trace_id", "span_id") and value:
                    payload[name] = value  # an explicit ``extra=`` beats the bound context
                else:
                    payload.setdefault(name, value)
        if record.name == "gunicorn.access" and isinstance(record.args, Mapping):
            for name, value in _gunicorn_access_fields(record.args).items():
                if value is not None:
                    payload[name] = value
        payload["pid"] = record.process
        # :meth:`format` has formatted the traceback (or taken ``exc_text``) and the stack.
        if "exc_info" in message_dict:
            payload["exception"] = message_dict["exc_info"]
        if "stack_info" in message_dict:
            payload["stack"] = message_dict["stack_info"]


class TextFormatter(JsonFormatter):
    """``LOG_FORMAT=text``: ``ts service LEVEL logger [correlation message trace] message``."""

    def serialize_log_record(self, fields: dict[str, Any]) -> str:
        tags = " ".join(
            f"{name}={fields[name]}"
            for name in ("correlation_id", "message_id", "trace_id")
            if fields.get(name)
        )
        line = (
            f"{fields['ts']} {fields['service'] or '-'} {fields['level']} {fields['logger']}"
            f"{f' [{tags}]' if tags else ''}: {fields['message']}"
        )
        if "exception" in fields:
            line = f"{line}\n{fields['exception']}"
        return line


def formatter_config(service: str, log_format: str) -> dict[str, Any]:
    """The ``formatters`` entry of a ``dictConfig`` for ``LOG_FORMAT`` (``json`` or ``text``)."""
    name = "TextFormatter" if log_format.strip().lower() == "text" else "JsonFormatter"
    return {"()": f"service_runtime.logging.{name}", "service": service}


def logging_config(
    service: str, *, level: str = "INFO", log_format: str = "json"
) -> dict[str, Any]:
    """A ``dictConfig`` sending every record of the process to stdout through one formatter."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structured": formatter_config(service, log_format)},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "structured",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"handlers": ["console"], "level": level.upper()},
        "loggers": {
            # Django's defaults give these a plain handler of their own (DEBUG only): send
            # them through the root instead, so that every line has the same shape.
            "django": {"handlers": [], "level": "INFO", "propagate": True},
            "django.server": {"handlers": [], "level": "INFO", "propagate": True},
            "pika": {"level": "WARNING"},
        },
    }


def configure(config: dict[str, Any]) -> None:
    """Django's ``LOGGING_CONFIG``: apply ``config``, and route warnings and crashes into it."""
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(
    kind: type[BaseException], value: BaseException, traceback: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)
        return
    logging.getLogger("service_runtime.crash").critical(
        "uncaught exception", exc_info=(kind, value, traceback)
    )


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None:
        return
    logging.getLogger("service_runtime.crash").critical(
        "uncaught exception in thread %s",
        args.thread.name if args.thread else "?",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
