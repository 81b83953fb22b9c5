"""Pages of a list, the same way in every service, answered as
``{"count": ..., "next": ..., "previous": ..., "results": [...]}``.

Two ways, by how a list grows:

- :class:`Pagination`, ``?page=`` and ``?page_size=``: for lists bounded by what staff create
  (the catalogue). ``count`` is the exact total and any page can be asked for by number.
- :class:`CursorPagination`, ``?cursor=`` and ``?page_size=``: for lists that grow with use
  (orders, notifications, the stock ledger). A page starts where the previous one ended, read
  through an index whatever the page, and ``count`` is exact up to ``count_limit`` and
  ``null`` beyond: a page number or an exact total would read every row before the page, or
  every row of the list, on every request.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import (
    BooleanField,
    F,
    Func,
    Model,
    QuerySet,
    Value,
    prefetch_related_objects,
)
from django.db.models.sql.compiler import SQLCompiler
from django.utils.timezone import is_naive
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination, _positive_int
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils.urls import remove_query_param, replace_query_param


class Pagination(PageNumberPagination):
    """``PAGE_SIZE`` items a page unless ``?page_size=`` asks for up to ``max_page_size``.

    A list with other sizes subclasses it and sets ``page_size`` and ``max_page_size``.
    """

    page_size_query_param = "page_size"
    max_page_size = 200


class RowComparison(Func):
    """``(a, b, ...) < (x, y, ...)``, or ``>`` when ``greater``: a row comparison, which
    PostgreSQL answers from an index on ``(a, b, ...)`` (after any equality columns), wherever
    the page starts."""

    output_field = BooleanField()

    def __init__(self, fields: Sequence[str], values: Sequence[Any], *, greater: bool) -> None:
        super().__init__(*(F(name) for name in fields), *(Value(value) for value in values))
        self.width = len(fields)
        self.operator = ">" if greater else "<"

    def as_sql(self, compiler: SQLCompiler, connection: Any, **extra: Any) -> Any:  # type: ignore[override]
        parts: list[str] = []
        params: list[Any] = []
        for expression in self.get_source_expressions():
            sql, more = compiler.compile(expression)
            parts.append(sql)
            params.extend(more)
        left, right = ", ".join(parts[: self.width]), ", ".join(parts[self.width :])
        return f"({left}) {self.operator} ({right})", params


class CursorPagination:
    """``page_size`` items a page (``?page_size=`` up to ``max_page_size``), in ``ordering``,
    from the ``?cursor=`` of a ``next`` or ``previous`` link.

    ``ordering`` names model fields, all descending or all ascending, the last one unique
    (``("-created_at", "-id")``): a cursor is the position of the row a page ended at, so
    rows added meanwhile neither repeat nor skip one. A list subclasses it to set ``ordering``
    (and sizes), and wants an index on its filters followed by the ordering.

    A page's rows are ``fetch(rows, size)``: the model instances of ``rows`` (the list's
    queryset, ordered, from the cursor's position, sliced to one row more than the page's
    ``size``), with what the list's queryset prefetches. A list whose items are more than
    their row (an order and its lines) overrides it to read the page as it shows it, in one
    statement: any object with the ordering's fields as attributes will do.
    """

    page_size: int = api_settings.PAGE_SIZE or 50
    max_page_size = 200
    page_size_query_param = "page_size"
    cursor_query_param = "cursor"
    ordering: tuple[str, ...] = ("-id",)
    count_limit = 1000  # a larger list answers "count": null
    invalid_cursor_message = "Invalid cursor."

    def paginate_queryset(
        self, queryset: QuerySet[Any], request: Request, view: Any = None
    ) -> list[Any]:
        self.request = request
        fields = [name.lstrip("-") for name in self.ordering]
        descending = self.ordering[0].startswith("-")
        position, backwards = self._decode(queryset.model, fields)
        counted = queryset.order_by(*self.ordering)[: self.count_limit + 1].count()
        self.count: int | None = counted if counted <= self.count_limit else None
        size = self._page_size(request)
        reverse = descending != backwards  # read from newest (descending) or oldest
        rows = queryset.order_by(*(f"-{name}" if reverse else name for name in fields))
        if position is not None:
            rows = rows.filter(RowComparison(fields, position, greater=not reverse))
        # One row more tells whether another page follows.
        page = self.fetch(rows[: size + 1], size)
        more = len(page) > size
        page = page[:size]
        if backwards:
            page.reverse()
        first = [getattr(page[0], name) for name in fields] if page else position
        last = [getattr(page[-1], name) for name in fields] if page else position
        has_next = more if not backwards else position is not None
        has_previous = more if backwards else position is not None
        self.next = self._link(last, backwards=False) if has_next and last else None
        self.previous = self._link(first, backwards=True) if has_previous and first else None
        return page

    def fetch(self, rows: QuerySet[Any], size: int) -> list[Any]:
        """The page's rows (see the class): ``rows`` holds up to ``size`` + 1, and the extra
        one's related rows are not needed."""
        related = getattr(rows, "_prefetch_related_lookups", ())  # no public accessor
        page = list(rows.prefetch_related(None))
        prefetch_related_objects(page[:size], *related)
        return page

    def get_paginated_response(self, data: Any) -> Response:
        return Response(
            {"count": self.count, "next": self.next, "previous": self.previous, "results": data}
        )

    def _page_size(self, request: Request) -> int:
        try:
            return int(
                _positive_int(
                    request.query_params[self.page_size_query_param],
                    strict=True,
                    cutoff=self.max_page_size,
                )
            )
        except (KeyError, ValueError):
            return self.page_size

    def _decode(self, model: type[Model], fields: list[str]) -> tuple[list[Any] | None, bool]:
        """The position and direction a ``?cursor=`` names; (None, False) without one."""
        token = self.request.query_params.get(self.cursor_query_param)
        if not token:
            return None, False
        try:
            padded = token + "=" * (-len(token) % 4)
            direction, values = json.loads(base64.urlsafe_b64decode(padded.encode()))
            if direction not in ("n", "p") or len(values) != len(fields):
                raise ValueError(direction)
            # clean(): the field's own parsing and range checks, so a forged value is a 404,
            # never a database error.
            position = [
                model._meta.get_field(name).clean(value, None)  # type: ignore[union-attr]
                for name, value in zip(fields, values, strict=True)
            ]
            if any(isinstance(value, datetime) and is_naive(value) for value in position):
                raise ValueError("a time without its offset")
        except (ValueError, TypeError, binascii.Error, ValidationError) as exc:
            raise NotFound(self.invalid_cursor_message) from exc
        return position, direction == "p"

    def _link(self, position: list[Any], *, backwards: bool) -> str:
        values = [value if isinstance(value, int | str) else str(value) for value in position]
        text = json.dumps(["p" if backwards else "n", values], separators=(",", ":"))
        token = base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
        url = remove_query_param(self.request.build_absolute_uri(), "page")
        return str(replace_query_param(url, self.cursor_query_param, token))


def explicit_ordering(rows: QuerySet[Any]) -> list[str]:
    """The field names ``rows`` is ordered by (``-`` for descending); ``ValueError`` unless it
    is ordered by field names only: a page read in any other order could repeat or skip rows."""
    names = [name for name in rows.query.order_by if isinstance(name, str)]
    if not names or len(names) != len(rows.query.order_by):
        raise ValueError("a page is read in an explicit ordering of fields")
    return names


def page_with_lateral(
    page_rows: QuerySet[Any, tuple[Any, ...]], columns: Sequence[str], lateral: str
) -> list[tuple[Any, ...]]:
    """The rows of ``page_rows`` (a ``values_list``, filtered, ordered and sliced: a page of a
    list), named ``columns``, each followed by the columns of ``lateral``: a subquery of one row
    about the page's row, which it names ``page`` (``CROSS JOIN LATERAL``). One statement, on
    PostgreSQL: the page's own, as the ORM writes it, with what belongs to each of its rows
    aggregated beside it (instead of one more query and a model instance per row)."""
    names = explicit_ordering(page_rows)
    page, params = page_rows.query.sql_with_params()
    qn = connection.ops.quote_name
    ordering = ", ".join(
        f"page.{qn(name.lstrip('-'))}{' DESC' if name.startswith('-') else ''}" for name in names
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT page.*, beside.*
            FROM ({page}) AS page ({", ".join(qn(name) for name in columns)})
            CROSS JOIN LATERAL {lateral} AS beside
            ORDER BY {ordering}
            """,  # noqa: S608 (the ORM's statement; names come from the models)
            params,
        )
        return list(cursor.fetchall())


def paginated_response(
    *,
    request: Request,
    view: Any,
    queryset: QuerySet[Any],
    serializer_class: type[serializers.BaseSerializer[Any]],
    pagination_class: type[Pagination] | type[CursorPagination] = Pagination,
) -> Response:
    paginator = pagination_class()
    page = paginator.paginate_queryset(queryset, request, view=view)
    assert page is not None
    return paginator.get_paginated_response(serializer_class(page, many=True).data)
