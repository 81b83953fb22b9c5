"""The paths every service serves besides its API: health, metrics, the OpenAPI schema and its
Swagger UI. A service's URL configuration includes them with ``path("", include(...))``."""

from __future__ import annotations

from pathlib import Path

import drf_spectacular_sidecar
from django.urls import path, re_path
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from service_runtime import health, metrics

SIDECAR_STATIC = Path(drf_spectacular_sidecar.__file__).parent / "static"

urlpatterns = [
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", metrics.metrics, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    # Swagger UI's own files, from drf-spectacular-sidecar: the docs page loads nothing from a CDN.
    re_path(
        r"^static/(?P<path>drf_spectacular_sidecar/.*)$",
        serve,
        {"document_root": str(SIDECAR_STATIC)},
    ),
]
