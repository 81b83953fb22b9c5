"""Pages of a list, the same way in every service: ``?page=`` and ``?page_size=``, answered as
``{"count": ..., "next": ..., "previous": ..., "results": [...]}``."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response


class Pagination(PageNumberPagination):
    """``PAGE_SIZE`` items a page unless ``?page_size=`` asks for up to ``max_page_size``.

    A list with other sizes subclasses it and sets ``page_size`` and ``max_page_size``.
    """

    page_size_query_param = "page_size"
    max_page_size = 200


def paginated_response(
    *,
    request: Request,
    view: Any,
    queryset: QuerySet[Any],
    serializer_class: type[serializers.BaseSerializer[Any]],
    pagination_class: type[Pagination] = Pagination,
) -> Response:
    paginator = pagination_class()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)
