"""One error shape for every API, with a one-line summary of the first problem."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import DisallowedHost, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.test import RequestFactory
from rest_framework import exceptions
from rest_framework.serializers import as_serializer_error

from service_runtime.errors import _summary, bad_request, exception_handler, refused
from service_runtime.request_limits import RequestBodyLimitMiddleware


@pytest.mark.parametrize(
    ("errors", "summary"),
    [
        ({"quantity": ["Must be at least 1."]}, "quantity: Must be at least 1."),
        (
            {"lines": [{}, {"quantity": ["Must be at least 1."]}]},
            "lines.quantity: Must be at least 1.",
        ),
        ({"non_field_errors": ["Unknown product 9."]}, "Unknown product 9."),
        (
            {"lines": {"non_field_errors": ["Too many lines."]}},
            "lines: Too many lines.",
        ),
        (["Something is off."], "Something is off."),
        ("plain", "plain"),
        ({}, "{}"),
    ],
)
def test_summary_names_the_first_problem_and_where(errors: Any, summary: str) -> None:
    assert _summary(errors) == summary


def test_validation_error_keeps_the_details_and_summarises_them() -> None:
    exc = exceptions.ValidationError({"lines": [{"product_id": ["Unknown product 9."]}]})
    response = exception_handler(exc, {})
    assert response is not None
    assert response.status_code == 400
    assert response.data["detail"] == "lines.product_id: Unknown product 9."
    assert response.data["code"] == "invalid"
    assert response.data["errors"] == {"lines": [{"product_id": ["Unknown product 9."]}]}


@pytest.mark.parametrize(
    ("exc", "detail", "errors"),
    [
        (
            DjangoValidationError({"sku": "a product with sku 'X' already exists."}),
            "sku: a product with sku 'X' already exists.",
            {"sku": ["a product with sku 'X' already exists."]},
        ),
        (
            DjangoValidationError("still has 2 products; move them first."),
            "still has 2 products; move them first.",
            {"non_field_errors": ["still has 2 products; move them first."]},
        ),
    ],
)
def test_a_services_validation_error_is_a_400_like_a_serializers(
    exc: DjangoValidationError, detail: str, errors: dict[str, list[str]]
) -> None:
    response = exception_handler(exc, {})
    assert response is not None
    assert response.status_code == 400
    assert response.data == {"detail": detail, "code": "invalid", "errors": errors}


@pytest.mark.parametrize(("field", "key"), [("sku", "sku"), (None, "non_field_errors")])
def test_a_refusal_keeps_its_code_and_answers_400_invalid(field: str | None, key: str) -> None:
    exc = refused("SKU-1 is taken.", code="sku_taken", field=field)
    codes = exceptions.ValidationError(as_serializer_error(exc)).get_codes()
    assert codes == {key: ["sku_taken"]}
    response = exception_handler(exc, {})
    assert response is not None
    assert response.status_code == 400
    where = f"{key}: " if field else ""
    assert response.data == {
        "detail": f"{where}SKU-1 is taken.",
        "code": "invalid",
        "errors": {key: ["SKU-1 is taken."]},
    }


@pytest.mark.parametrize(
    ("exc", "status", "detail", "code"),
    [
        (exceptions.NotFound(), 404, "Not found.", "not_found"),
        (Http404(), 404, "Not found.", "not_found"),
        (
            exceptions.NotAuthenticated(),
            401,
            "Authentication credentials were not provided.",
            "not_authenticated",
        ),
        (
            exceptions.AuthenticationFailed("Token has expired.", code="token_expired"),
            401,
            "Token has expired.",
            "token_expired",
        ),
        (exceptions.PermissionDenied("Staff only."), 403, "Staff only.", "permission_denied"),
    ],
)
def test_single_detail_errors(exc: Exception, status: int, detail: str, code: str) -> None:
    response = exception_handler(exc, {})
    assert response is not None
    assert response.status_code == status
    assert response.data == {"detail": detail, "code": code}


def test_unexpected_exceptions_are_left_to_django() -> None:
    assert exception_handler(RuntimeError("boom"), {}) is None


def test_django_refusing_a_body_too_large_is_a_413_in_the_error_shape() -> None:
    # A body sent without a length passes the middleware's check and is refused when read.
    response = bad_request(RequestFactory().post("/"), RequestDataTooBig("too big"))
    assert response.status_code == 413
    assert json.loads(response.content)["code"] == "too_large"


def test_django_refusing_a_request_before_any_view_is_json() -> None:
    response = bad_request(RequestFactory().get("/"), DisallowedHost("evil.example"))
    assert response.status_code == 400
    assert json.loads(response.content) == {"detail": "Bad request.", "code": "bad_request"}


def test_the_middleware_refuses_a_body_whose_announced_length_is_over_the_limit() -> None:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    reached: list[HttpRequest] = []

    def view(request: HttpRequest) -> HttpResponse:
        reached.append(request)
        return HttpResponse()

    middleware = RequestBodyLimitMiddleware(view)
    factory = RequestFactory()
    assert middleware(factory.post("/", b"x" * limit, content_type="text/plain")).status_code == 200
    response = middleware(factory.post("/", b"x" * (limit + 1), content_type="text/plain"))
    assert response.status_code == 413 and len(reached) == 1
    assert (
        isinstance(response, JsonResponse) and json.loads(response.content)["code"] == "too_large"
    )
