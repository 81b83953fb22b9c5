"""What drf-spectacular needs to describe the APIs: the bearer JWT scheme and the error shape.

Views annotate themselves with ``@extend_schema(..., responses={..., **errors(400, 404)})``;
list views answer pages: ``responses={200: paginated(ItemSerializer, "Item")}`` with
``parameters=page_parameters(...)``, or ``paginated(..., cursor=True)`` with
``parameters=cursor_parameters(...)`` for a list paged by cursor.
"""

from __future__ import annotations

from typing import Any, Literal

from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import SAFE_METHODS

from identity.permissions import IsStaffOrReadOnly
from service_runtime.pagination import CursorPagination

ERROR_DESCRIPTIONS = {
    400: "The request is invalid; `errors` says where.",
    401: "No access token, or one that is invalid or expired.",
    403: "The caller may not do this (staff only).",
    404: "No such resource, or not the caller's.",
    409: "The resource's state does not allow this.",
    422: "The request conflicts with an earlier one (an Idempotency-Key reused).",
    429: "Too many requests (an abuse limit): `Retry-After` says in how many seconds to retry.",
    503: "A dependency (the message broker) cannot be reached; try again shortly.",
}


class AutoSchema(openapi.AutoSchema):
    """Names the nested serializers of a view (``OrderCancelApi.InputSerializer``) after the
    view, so that every view's ``InputSerializer`` gets a component of its own."""

    def get_serializer_name(
        self, serializer: serializers.Serializer, direction: Literal["request", "response"]
    ) -> str:
        parts = type(serializer).__qualname__.split(".")
        if len(parts) == 1 or "<locals>" in parts:
            return str(super().get_serializer_name(serializer, direction))
        return "".join(part.removesuffix("Serializer").removesuffix("Api") for part in parts)


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "identity.authentication.JWTAuthentication"
    name = "bearerAuth"

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[str]]]:
        requirements: list[dict[str, list[str]]] = [{self.name: []}]
        permissions = auto_schema.view.get_permissions()
        if auto_schema.method in SAFE_METHODS and any(
            isinstance(permission, IsStaffOrReadOnly) for permission in permissions
        ):
            requirements.append({})  # anyone may read; the token is optional
        return requirements

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from POST /api/users/token/ (user-notification).",
        }


# Every error: ``{"detail": "...", "code": "...", "errors": {...}}``. Built inline: a declared
# field named ``errors`` would hide the ``Serializer.errors`` property.
ERROR = inline_serializer(
    name="Error",
    fields={
        "detail": serializers.CharField(),
        "code": serializers.CharField(),
        "errors": serializers.JSONField(
            required=False, help_text="Per field (validation errors only), as DRF reports them."
        ),
    },
)


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """Response entries for the error status codes an operation can answer with."""
    return {code: OpenApiResponse(ERROR, description=ERROR_DESCRIPTIONS[code]) for code in codes}


def paginated(
    item: type[serializers.Serializer],
    name: str,
    *,
    cursor: bool = False,
    **extra: serializers.Field,
) -> serializers.Serializer:
    """A page of ``item``s as ``service_runtime.pagination`` answers it (plus ``extra``
    fields); ``cursor=True`` for a list paged by :class:`~service_runtime.pagination.
    CursorPagination`, whose ``count`` is null beyond its limit."""
    count = (
        serializers.IntegerField(
            allow_null=True,
            help_text=(
                f"How many items the list holds, when at most "
                f"{CursorPagination.count_limit}; null when more (a total would read them all)."
            ),
        )
        if cursor
        else serializers.IntegerField()
    )
    return inline_serializer(
        name=f"Paginated{name}List",
        fields={
            "count": count,
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": item(many=True),
            **extra,
        },
    )


def page_parameters(max_page_size: int) -> list[OpenApiParameter]:
    return [
        OpenApiParameter("page", {"type": "integer", "minimum": 1}, description="1 is the first."),
        _page_size(max_page_size),
    ]


def cursor_parameters(max_page_size: int) -> list[OpenApiParameter]:
    """The parameters of a list paged by ``CursorPagination``."""
    return [
        OpenApiParameter(
            "cursor",
            str,
            description="Where the page starts: taken from the `next` or `previous` link.",
        ),
        _page_size(max_page_size),
    ]


def _page_size(max_page_size: int) -> OpenApiParameter:
    return OpenApiParameter(
        "page_size",
        {"type": "integer", "minimum": 1, "maximum": max_page_size},
        description=f"At most {max_page_size}.",
    )
