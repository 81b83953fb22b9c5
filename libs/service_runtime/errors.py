"""One error shape for every API: ``{"detail": "...", "code": "...", "errors": {...}}``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DjangoValidationError):
        # A business rule a service enforces is a 400, shown like a serializer's errors.
        exc = exceptions.ValidationError(as_serializer_error(exc))
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    code = getattr(exc, "default_code", "error")
    if isinstance(data, dict) and "detail" in data and not isinstance(data["detail"], dict | list):
        # simplejwt adds "messages" beside "detail"; the detail alone is the answer.
        response.data = {
            "detail": str(data["detail"]),
            "code": getattr(data["detail"], "code", code),
        }
    else:
        response.data = {"detail": _summary(data), "code": code, "errors": data}
    return response


def refused(message: str, *, code: str, field: str | None = None) -> DjangoValidationError:
    """What a service raises to refuse a request: a 400 ``invalid`` with ``message`` under
    ``field`` (``non_field_errors`` without one); ``code``, from the service's ``ErrorCode``,
    stays on the error for whoever catches it."""
    error = DjangoValidationError(message, code=code)
    return error if field is None else DjangoValidationError({field: error})


def _summary(errors: Any) -> str:
    """The first message in a nested DRF error structure, prefixed by where it applies."""
    path: list[str] = []
    node = errors
    while True:
        if isinstance(node, dict) and node:
            key, node = next(iter(node.items()))
            path.append(str(key))
        elif isinstance(node, list) and node:
            node = next((item for item in node if item), node[0])
        else:
            break
    where = ".".join(p for p in path if p != "non_field_errors")
    return f"{where}: {node}" if where else str(node)


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """``handler404``: a path no URL pattern matches gets the API's error shape, not HTML."""
    return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)


def server_error(request: HttpRequest) -> JsonResponse:
    """``handler500``: the API's error shape, without details (they are in the log)."""
    return JsonResponse({"detail": "Server error.", "code": "server_error"}, status=500)
