import re
import uuid

from rest_framework.request import Request

from service_runtime.logging import current_correlation_id

_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def correlation_id(request: Request) -> str:
    """The request's correlation id, the one its log lines carry.

    ``RequestContextMiddleware`` binds it (the caller's ``X-Request-ID`` when it is a sane
    token, else a fresh one); without the middleware the same rule applies here.
    """
    bound = current_correlation_id()
    if bound:
        return bound
    given = request.headers.get("X-Request-ID", "")
    return given if _SANE.match(given) else str(uuid.uuid4())
