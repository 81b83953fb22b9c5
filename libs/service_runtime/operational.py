"""Health checks and metrics answered before Django validates the Host header.

A kubelet or Prometheus calls a pod by its IP address, which is in no ``ALLOWED_HOSTS``: through
``CommonMiddleware`` every such request would be a 400. These paths build no URL from the Host
header, so they are answered first (and are left out of the HTTP metrics, which would otherwise
count mostly probes). ``service_runtime.urls`` routes the same paths for everything else.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

from service_runtime import health, metrics

View = Callable[[HttpRequest], HttpResponseBase]
PATHS: dict[str, View] = {
    "/health/live": health.live,
    "/health/ready": health.ready,
    "/metrics": metrics.metrics,
}


class OperationalPathsMiddleware:
    def __init__(self, get_response: View) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        view = PATHS.get(request.path_info)
        return view(request) if view is not None else self.get_response(request)
