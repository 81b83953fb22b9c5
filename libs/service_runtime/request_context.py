"""The context of one HTTP request: its correlation id in every log line, and its server span.

The correlation id is the caller's ``X-Request-ID`` when it is a sane token, else a new UUID;
it is echoed in the response's ``X-Request-ID``. The request's span continues the caller's
W3C ``traceparent``, and the response names it in ``traceresponse`` (W3C Trace Context level
2), so a client, or the access log, can find the trace of its request.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

from service_runtime import tracing
from service_runtime.logging import bind, current_correlation_id, current_trace_ids

REQUEST_ID_HEADER = "X-Request-ID"
TRACE_RESPONSE_HEADER = "traceresponse"
_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def request_id_from(given: str | None) -> str:
    """``given`` when it is a sane token (letters, digits, ``._:-``, at most 64), else a UUID."""
    return given if given and _SANE.match(given) else str(uuid.uuid4())


def correlation_id(request: HttpRequest) -> str:
    """The request's correlation id, the one its log lines carry, for the events it publishes.

    :class:`RequestContextMiddleware` binds it; without the middleware the same rule applies.
    """
    return current_correlation_id() or request_id_from(request.headers.get(REQUEST_ID_HEADER))


class RequestContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        method = request.method or "GET"
        with (
            tracing.server_span(method, request.path, request.headers) as span,
            bind(correlation_id=request_id, request_id=request_id) as context,
        ):
            ids = current_trace_ids()
            # For lines written after this returns (Django's ``django.request`` warnings).
            request.log_context = {  # type: ignore[attr-defined]
                **context,
                **(dict(zip(("trace_id", "span_id"), ids, strict=True)) if ids else {}),
            }
            response = self.get_response(request)
            match = getattr(request, "resolver_match", None)
            tracing.end_server_span(
                span,
                method=method,
                status_code=response.status_code,
                route=f"/{match.route}" if match is not None and match.route else None,
            )
            headers = tracing.inject()
        response[REQUEST_ID_HEADER] = request_id
        if headers:
            response[TRACE_RESPONSE_HEADER] = headers["traceparent"]
        return response
