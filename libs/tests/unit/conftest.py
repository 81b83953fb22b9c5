from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service_runtime import tracing


@pytest.fixture(scope="session")
def _span_exporter() -> InMemorySpanExporter:
    """One in-memory exporter on the process's tracer provider (a provider is set only once):
    from then on spans are recorded, as in a service that exports them."""
    exporter = InMemorySpanExporter()
    tracing.configure("libtest")
    tracing.export_to(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def spans(_span_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """The spans finished during the test."""
    _span_exporter.clear()
    yield _span_exporter
    _span_exporter.clear()
