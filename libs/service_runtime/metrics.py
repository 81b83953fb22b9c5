"""Prometheus metrics: ``GET /metrics``, and the HTTP metrics every service has.

With ``PROMETHEUS_MULTIPROC_DIR`` set (always under gunicorn, see ``gunicorn_conf``, and for
every process ``make up`` starts) each process writes its samples to files in that directory and
``/metrics`` adds up all of them: gunicorn's workers and the service's consumer, relay and other
workers. Without it (a test, a shell) the answering process shows its own.

Figures read from the database (the outbox backlog, ...) come from the collectors named in
``settings.METRICS_COLLECTORS``, run by whichever process answers the scrape.

No authentication; the gateway does not route ``/metrics`` (``deploy/nginx/nginx.conf``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.module_loading import import_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from service_runtime.metrics_dir import multiprocess_dir

UNMATCHED_ROUTE = "<unmatched>"  # every path no URL pattern matched: one label value, not many
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered, by method, route (the URL pattern) and status code.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route (the URL pattern).",
    ["method", "route"],
)


class HttpMetricsMiddleware:
    """Counts and times every request under its URL pattern, not its path (ids stay out)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = f"/{match.route}" if match is not None and match.route else UNMATCHED_ROUTE
        method = request.method if request.method in KNOWN_METHODS else "OTHER"
        HTTP_REQUESTS.labels(method, route, str(response.status_code)).inc()
        HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - started)
        return response


class _ThisProcess:
    """The answering process's own metrics, when there is no multi-process directory."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def scrape_registry() -> CollectorRegistry:
    """Every process's samples plus the scrape-time collectors, in a registry of its own."""
    registry = CollectorRegistry()
    directory = multiprocess_dir()
    if directory is not None:
        MultiProcessCollector(registry, path=str(directory))
    else:
        registry.register(_ThisProcess())
    for path in getattr(settings, "METRICS_COLLECTORS", ()):
        registry.register(import_string(path)())
    return registry


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    from prometheus_client import generate_latest

    return HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)
