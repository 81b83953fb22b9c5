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
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

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


def tracer() -> trace.Tracer:
    """The process's tracer (made once: ``get_tracer`` is not free, and it runs per message)."""
    global _tracer
    if _tracer is None:
        _tracer = configure().get_tracer(INSTRUMENTATION_NAME)
    return _tracer


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else None


def trace_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """Only the W3C trace-context entries of ``headers`` (any case), as text."""
    found: dict[str, str] = {}
    for key, value in (headers or {}).items():
        text = _text(value)
        if isinstance(key, str) and key.lower() in TRACE_HEADERS and text:
            found[key.lower()] = text
    return found


def extract(headers: Mapping[str, Any] | None) -> Context:
    """The context whose parent is the ``traceparent`` in ``headers`` (empty when none)."""
    return _propagator.extract(trace_headers(headers))


def inject(context: Context | None = None) -> dict[str, str] | None:
    """``traceparent`` (and ``tracestate``) of the current span, or None outside any span."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=context)
    return carrier or None


@contextmanager
def server_span(method: str, path: str, headers: Mapping[str, Any]) -> Iterator[Span]:
    """The span of one HTTP request, continuing the caller's trace when it sent one."""
    with tracer().start_as_current_span(
        method,  # renamed to "METHOD route" once the URL is resolved
        context=extract(headers),
        kind=SpanKind.SERVER,
        attributes={"http.request.method": method, "url.path": path},
    ) as span:
        yield span


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


@contextmanager
def publish_span(
    *,
    exchange: str,
    routing_key: str,
    message_id: str,
    correlation_id: str,
    stored_headers: Mapping[str, Any] | None,
) -> Iterator[dict[str, str]]:
    """The relay's span for one outbox row, a child of the span that wrote the row.

    Yields the trace headers to put on the AMQP message: this span's context, so that the
    consumer's span hangs below it, in the trace the row was written in.
    """
    with tracer().start_as_current_span(
        f"publish {routing_key}",
        context=extract(stored_headers),
        kind=SpanKind.PRODUCER,
        attributes=_message_attributes(
            "publish", exchange, routing_key, message_id, correlation_id
        ),
    ):
        yield inject() or {}


@contextmanager
def consume_span(
    *,
    queue: str,
    exchange: str,
    routing_key: str,
    message_id: str,
    correlation_id: str,
    headers: Mapping[str, Any] | None,
) -> Iterator[Span]:
    """The consumer's span for one delivery, a child of the ``traceparent`` it carries."""
    attributes = _message_attributes("process", exchange, routing_key, message_id, correlation_id)
    attributes["messaging.destination.subscription.name"] = queue
    with tracer().start_as_current_span(
        f"consume {routing_key}",
        context=extract(headers),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    ) as span:
        yield span
