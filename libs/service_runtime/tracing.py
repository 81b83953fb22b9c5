"""OpenTelemetry tracing with W3C trace context, across HTTP, the outbox and the broker.

One trace follows an order: the HTTP request that placed it (a ``SERVER`` span whose parent is
the caller's ``traceparent``, if any), the relay's ``publish`` span, the consumer's ``consume``
span in the next service, and so on. The context crosses the outbox in the row's ``headers``
(``traceparent``/``tracestate`` of the span that wrote it) and the broker in the AMQP message
headers.

Spans are always created, so log lines carry ``trace_id`` and ``span_id``; they are exported
only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set,
over OTLP/HTTP, with the exporter's standard ``OTEL_*`` variables.

A span is recorded (its attributes, events and timings kept) only while something exports it:
otherwise it is a non-recording span that still has its trace and span ids, at about half the
cost of a recorded one. Each service decides alone: one that exports records every span it
makes, whatever the sampled flag of the ``traceparent`` it continues; one that does not passes
its spans on with the flag off, which says only that it recorded nothing.

While nothing records, :func:`consume_span`, :func:`publish_span` and :func:`server_span`, which
run for every message and request, skip the SDK's ``start_as_current_span`` (sampler call,
sampling result, nested context managers) and, for a plain ``traceparent``, the propagator: they
make the span the SDK would make (a ``NonRecordingSpan`` with the parent's trace id and trace
state, or a new trace id; a new span id from the provider's id generator; the sampled flag off) in
about a third of the time. :func:`extract` and :func:`inject` read and write the headers as the
propagator does, without it.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import _TRACECONTEXT_MAXIMUM_TRACESTATE_LENGTH, DEFAULT_TRACE_STATE

TRACE_HEADERS = ("traceparent", "tracestate")
INSTRUMENTATION_NAME = "service_runtime"
EXPORT_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")

_propagator = TraceContextTextMapPropagator()
_lock = threading.Lock()
_provider: TracerProvider | None = None


def exporting() -> bool:
    """Whether spans leave the process: only when an OTLP endpoint is configured."""
    return any(os.environ.get(name, "").strip() for name in EXPORT_ENDPOINT_VARIABLES)


def _default_service() -> str:
    try:
        from django.conf import settings

        return str(getattr(settings, "MESSAGING_SERVICE", "") or "unknown")
    except Exception:  # Django not configured: a plain script
        return "unknown"


class RecordWhenExported(Sampler):
    """Record every span once a span processor is added (:func:`export_to`), none before."""

    def __init__(self) -> None:
        self.recording = False

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        # As the SDK's own samplers: the span starts with the attributes given, and keeps the
        # parent's trace state.
        state = trace.get_current_span(parent_context).get_span_context().trace_state
        if self.recording:
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, state)
        return SamplingResult(Decision.DROP, None, state)

    def get_description(self) -> str:
        return f"RecordWhenExported{{{'on' if self.recording else 'off'}}}"


_sampler = RecordWhenExported()


def export_to(processor: SpanProcessor) -> None:
    """Hand every span from now on to ``processor`` (and so record them all)."""
    configure().add_span_processor(processor)
    _sampler.recording = True


def recording() -> bool:
    """Whether spans are recorded (something exports them)."""
    return _sampler.recording


def configure(service: str | None = None) -> TracerProvider:
    """The process's tracer provider, created on first use (idempotent, thread-safe).

    ``service.name`` is ``OTEL_SERVICE_NAME`` when set, else ``service``, else the Django
    setting ``MESSAGING_SERVICE``. It becomes the global provider too, unless one is set.
    """
    global _provider
    with _lock:
        if _provider is None:
            name = os.environ.get("OTEL_SERVICE_NAME") or service or _default_service()
            provider = TracerProvider(
                resource=Resource.create({"service.name": name}), sampler=_sampler
            )
            if exporting():
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )

                provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
                _sampler.recording = True
            if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
                trace.set_tracer_provider(provider)
            _provider = provider
        return _provider


_tracer: trace.Tracer | None = None
# The same tracer when its unrecorded spans are ones _unrecorded_span can make in its place: the
# SDK's (not the no-op one of OTEL_SDK_DISABLED), with our sampler, and no metrics counting the
# spans it starts (OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED).
_plain_tracer: SdkTracer | None = None


def tracer() -> trace.Tracer:
    """The process's tracer (made once: ``get_tracer`` is not free, and it runs per message)."""
    global _tracer, _plain_tracer
    if _tracer is None:
        made = configure().get_tracer(INSTRUMENTATION_NAME)
        _plain_tracer = None
        if (
            isinstance(made, SdkTracer)
            and made.sampler is _sampler
            and isinstance(made._tracer_metrics, NoOpTracerMetrics)
        ):
            _plain_tracer = made
        _tracer = made
    return _tracer


def _unrecording_tracer() -> SdkTracer | None:
    """The tracer, when a span it started now would be one that records nothing; else None."""
    current = tracer()  # configures the provider first: one that exports turns recording on
    made = _plain_tracer
    if made is None or made is not current or _sampler.recording or not made._is_enabled():
        return None
    return made


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else None


def trace_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """Only the W3C trace-context entries of ``headers`` (any case), as text."""
    found: dict[str, str] = {}
    for key, value in (headers or {}).items():
        if isinstance(key, str) and (name := key.lower()) in TRACE_HEADERS:
            text = _text(value)
            if text:
                found[name] = text
    return found


# A version 00 traceparent with nothing around it, which _remote_parent reads itself.
_PLAIN_TRACEPARENT = re.compile("00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE_ID = "0" * 32
_ZERO_SPAN_ID = "0" * 16

# trace id, span id, trace flags and trace state (None: the empty one) of a remote parent
_Parent = tuple[int, int, int, TraceState | None]


def _remote_parent(headers: Mapping[str, Any] | None) -> _Parent | None:
    """The parent that the propagator extracts from ``headers``, or None when it finds none.

    A plain ``traceparent`` (and a ``tracestate`` of a sane length) is read here, by the same
    rules; any other, with another version, blanks or a suffix, or a header the propagator would
    warn about, by the propagator itself.
    """
    found = trace_headers(headers)
    traceparent = found.get("traceparent")
    if traceparent is None:  # trace_headers keeps no empty value
        return None
    tracestate = found.get("tracestate")
    match = _PLAIN_TRACEPARENT.fullmatch(traceparent)
    if match is None or (
        tracestate is not None and len(tracestate) > _TRACECONTEXT_MAXIMUM_TRACESTATE_LENGTH
    ):
        parent = trace.get_current_span(_propagator.extract(found)).get_span_context()
        if not parent.is_valid:
            return None
        return parent.trace_id, parent.span_id, parent.trace_flags, parent.trace_state
    trace_id, span_id, flags = match.groups()
    if trace_id == _ZERO_TRACE_ID or span_id == _ZERO_SPAN_ID:
        return None
    return (
        int(trace_id, 16),
        int(span_id, 16),
        int(flags, 16),
        None if tracestate is None else TraceState.from_header([tracestate]),
    )


def extract(headers: Mapping[str, Any] | None) -> Context:
    """The context whose parent is the ``traceparent`` in ``headers`` (empty when none)."""
    if _sampler.recording:
        return _propagator.extract(trace_headers(headers))
    parent = _remote_parent(headers)
    if parent is None:
        return Context()
    trace_id, span_id, flags, state = parent
    span = NonRecordingSpan(SpanContext(trace_id, span_id, True, TraceFlags(flags), state))
    return trace.set_span_in_context(span, Context())


def _headers_of(span_context: SpanContext) -> dict[str, str] | None:
    """The headers that the propagator's ``inject`` writes for a span with ``span_context``."""
    if span_context == INVALID_SPAN_CONTEXT:
        return None
    trace_id, span_id, _, flags, state, _ = span_context  # quicker than its properties
    headers = {"traceparent": "00-%032x-%016x-%02x" % (trace_id, span_id, flags)}  # noqa: UP031
    if state:
        headers["tracestate"] = state.to_header()
    return headers


def inject(context: Context | None = None) -> dict[str, str] | None:
    """``traceparent`` (and ``tracestate``) of the current span, or None outside any span."""
    if not _sampler.recording:
        return _headers_of(trace.get_current_span(context).get_span_context())
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=context)
    return carrier or None


_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_NOT_SAMPLED_RANDOM_ID = TraceFlags(TraceFlags.DEFAULT | TraceFlags.RANDOM_TRACE_ID)


def _unrecorded_span(made: SdkTracer, headers: Mapping[str, Any] | None) -> NonRecordingSpan:
    """The span that ``made.start_span(..., context=extract(headers))`` returns, unrecorded.

    Its ids come from the provider's id generator, asked as the SDK asks it; its trace state is
    the one :class:`RecordWhenExported` keeps, the parent's (the empty one for a new trace).
    """
    parent = _remote_parent(headers)
    ids = made.id_generator
    state: TraceState | None
    if parent is None:
        trace_id = ids.generate_trace_id()
        random_trace_id = ids.is_trace_id_random()
        state = DEFAULT_TRACE_STATE
    else:
        trace_id, _, flags, state = parent
        random_trace_id = bool(flags & TraceFlags.RANDOM_TRACE_ID)
    return NonRecordingSpan(
        SpanContext(
            trace_id,
            ids.generate_span_id(),
            False,  # is_remote
            _NOT_SAMPLED_RANDOM_ID if random_trace_id else _NOT_SAMPLED,
            state,
        )
    )


class _Unrecorded:
    """``with``: an unrecorded span current in the block, as ``start_as_current_span`` does it.

    The span is made on entry; the context before it is back on exit, whatever the block raised
    (an exception that the SDK's ``use_span`` records only on a span that records).
    """

    __slots__ = ("_headers", "_made", "_token")

    def __init__(self, made: SdkTracer, headers: Mapping[str, Any] | None) -> None:
        self._made = made
        self._headers = headers

    def _start(self) -> NonRecordingSpan:
        span = _unrecorded_span(self._made, self._headers)
        self._token = context_api.attach(trace.set_span_in_context(span))
        return span

    def __exit__(self, *exc_info: object) -> None:
        context_api.detach(self._token)


class _UnrecordedSpan(_Unrecorded):
    __slots__ = ()

    def __enter__(self) -> Span:
        return self._start()


class _UnrecordedPublishSpan(_Unrecorded):
    __slots__ = ()

    def __enter__(self) -> dict[str, str]:
        return _headers_of(self._start().get_span_context()) or {}


def server_span(method: str, path: str, headers: Mapping[str, Any]) -> AbstractContextManager[Span]:
    """The span of one HTTP request, continuing the caller's trace when it sent one."""
    made = _unrecording_tracer()
    if made is not None:
        return _UnrecordedSpan(made, headers)
    attributes = {"http.request.method": method, "url.path": path}
    # named "METHOD route" once the URL is resolved (end_server_span)
    return _recorded_span(method, headers, SpanKind.SERVER, attributes)


def _recorded_span(
    name: str, headers: Mapping[str, Any] | None, kind: SpanKind, attributes: dict[str, str]
) -> AbstractContextManager[Span]:
    """The SDK's span, current in the block, a child of the ``traceparent`` in ``headers``."""
    return tracer().start_as_current_span(
        name, context=extract(headers), kind=kind, attributes=attributes
    )


def end_server_span(span: Span, *, method: str, status_code: int, route: str | None) -> None:
    span.set_attribute("http.response.status_code", status_code)
    if route is not None:
        span.set_attribute("http.route", route)
        span.update_name(f"{method} {route}")
    if status_code >= 500:
        span.set_status(Status(StatusCode.ERROR))


def _message_attributes(
    operation: str, exchange: str, routing_key: str, message_id: str, correlation_id: str
) -> dict[str, str]:
    return {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": operation,
        "messaging.destination.name": exchange,
        "messaging.rabbitmq.destination.routing_key": routing_key,
        "messaging.message.id": message_id,
        "messaging.message.conversation_id": correlation_id,
    }


def publish_span(
    *,
    exchange: str,
    routing_key: str,
    message_id: str,
    correlation_id: str,
    stored_headers: Mapping[str, Any] | None,
) -> AbstractContextManager[dict[str, str]]:
    """The relay's span for one outbox row, a child of the span that wrote the row.

    Yields the trace headers to put on the AMQP message: this span's context, so that the
    consumer's span hangs below it, in the trace the row was written in.
    """
    made = _unrecording_tracer()
    if made is not None:
        return _UnrecordedPublishSpan(made, stored_headers)
    attributes = _message_attributes("publish", exchange, routing_key, message_id, correlation_id)
    return _recorded_publish_span(
        _recorded_span(f"publish {routing_key}", stored_headers, SpanKind.PRODUCER, attributes)
    )


@contextmanager
def _recorded_publish_span(span: AbstractContextManager[Span]) -> Iterator[dict[str, str]]:
    with span:
        yield inject() or {}


def consume_span(
    *,
    queue: str,
    exchange: str,
    routing_key: str,
    message_id: str,
    correlation_id: str,
    headers: Mapping[str, Any] | None,
) -> AbstractContextManager[Span]:
    """The consumer's span for one delivery, a child of the ``traceparent`` it carries."""
    made = _unrecording_tracer()
    if made is not None:
        return _UnrecordedSpan(made, headers)
    attributes = _message_attributes("process", exchange, routing_key, message_id, correlation_id)
    attributes["messaging.destination.subscription.name"] = queue
    return _recorded_span(f"consume {routing_key}", headers, SpanKind.CONSUMER, attributes)
