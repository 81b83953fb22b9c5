import re
import uuid

from rest_framework.request import Request

_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def correlation_id(request: Request) -> str:
    """The caller's ``X-Request-ID`` when it is a sane token, else a fresh one."""
    given = request.headers.get("X-Request-ID", "")
    return given if _SANE.match(given) else str(uuid.uuid4())
