"""One error shape for every API: ``{"detail": "...", "code": "...", "errors": {...}}``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
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


def too_large() -> JsonResponse:
    """413: a request body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (``REQUEST_BODY_MAX_BYTES``)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return JsonResponse(
        {"detail": f"The request body is larger than {limit} bytes.", "code": "too_large"},
        status=413,
    )


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """``handler400``: what Django refuses before any view (a Host not allowed, a body too large
    that came without a length, too many fields...) in the API's error shape, not HTML."""
    if isinstance(exception, RequestDataTooBig):
        return too_large()
    return JsonResponse({"detail": "Bad request.", "code": "bad_request"}, status=400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """``handler403``: a refusal outside DRF's views (which answer their own) as JSON."""
    return JsonResponse(
        {
            "detail": "You do not have permission to perform this action.",
            "code": "permission_denied",
        },
        status=403,
    )


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """``handler404``: a path no URL pattern matches gets the API's error shape, not HTML."""
    return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)


def server_error(request: HttpRequest) -> JsonResponse:
    """``handler500``: the API's error shape, without details (they are in the log)."""
    return JsonResponse({"detail": "Server error.", "code": "server_error"}, status=500)
