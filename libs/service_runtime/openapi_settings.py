"""drf-spectacular's settings for one service (kept apart from ``service_runtime.openapi``,
which imports DRF and so cannot be imported while settings load)."""

from __future__ import annotations

from typing import Any


def openapi_settings(service: str) -> dict[str, Any]:
    return {
        "TITLE": f"{service} API",
        "DESCRIPTION": (
            f"The REST API of the {service} service. Send an access token from "
            "`POST /api/users/token/` (user-notification) as `Authorization: Bearer <token>`. "
            'Errors are `{"detail": "...", "code": "...", "errors": {...}}`.'
        ),
        "VERSION": "1.0.0",
        "SERVE_INCLUDE_SCHEMA": False,
        "SERVE_AUTHENTICATION": [],  # the schema and its UI are public, like the API's shape
        "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
        "SWAGGER_UI_DIST": "SIDECAR",  # served from drf-spectacular-sidecar: no CDN
        "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
        "REDOC_DIST": "SIDECAR",
        "COMPONENT_SPLIT_REQUEST": True,  # separate request and response components
        "SCHEMA_PATH_PREFIX": r"/api/",
        "DISABLE_ERRORS_AND_WARNINGS": False,
    }
