"""A request body larger than the API accepts is a 413 in the API's error shape.

Django refuses such a body only when the view reads it (``RequestDataTooBig``, which it answers
with its HTML "Bad Request (400)" page), and gunicorn passes any size on. The size a request
announces is checked here, before any other middleware; a body sent without a length (chunked)
is still refused when read, by ``service_runtime.errors.bad_request``.

The refused body is read and thrown away (up to ``DRAIN_LIMIT_BYTES``) before answering: a
server that closes a socket with unread data makes the kernel reset the connection, and the
client would see "connection reset" instead of the 413.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

from service_runtime.errors import too_large

View = Callable[[HttpRequest], HttpResponseBase]
DRAIN_LIMIT_BYTES = 16 * 1024 * 1024
CHUNK_BYTES = 64 * 1024


class RequestBodyLimitMiddleware:
    def __init__(self, get_response: View) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # Django reads it as no body
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is None or length <= limit:
            return self.get_response(request)
        response = too_large()
        if length <= DRAIN_LIMIT_BYTES:
            stream = request.META["wsgi.input"]
            while length > 0 and (chunk := stream.read(min(CHUNK_BYTES, length))):
                length -= len(chunk)
        else:
            response["Connection"] = "close"
        return response
