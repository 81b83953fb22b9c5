"""The correlation id a view passes on to the events it publishes."""

from __future__ import annotations

import uuid

from django.test import RequestFactory

from service_runtime.logging import bind
from service_runtime.request_context import correlation_id


def test_the_id_bound_by_the_middleware_wins() -> None:
    request = RequestFactory().get("/", headers={"X-Request-ID": "from-the-header"})
    with bind(correlation_id="bound"):
        assert correlation_id(request) == "bound"


def test_without_the_middleware_a_sane_request_id_is_used() -> None:
    request = RequestFactory().get("/", headers={"X-Request-ID": "abc-123:x"})
    assert correlation_id(request) == "abc-123:x"


def test_without_the_middleware_anything_else_gets_a_new_id() -> None:
    assert uuid.UUID(correlation_id(RequestFactory().get("/")))
    for given in ("not sane!", "x" * 65):
        request = RequestFactory().get("/", headers={"X-Request-ID": given})
        assert uuid.UUID(correlation_id(request))
