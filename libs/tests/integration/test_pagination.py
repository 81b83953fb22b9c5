"""Cursor pages: every row once, in order, ties included, however the list changes meanwhile."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from messaging.models import InboxMessage
from service_runtime.pagination import CursorPagination

pytestmark = pytest.mark.django_db

ROWS = 23


class NewestFirst(CursorPagination):
    ordering = ("-processed_at", "-id")
    page_size = 5
    max_page_size = 10
    count_limit = 20


@pytest.fixture
def rows() -> list[int]:
    """Newest first, as the pages should show them; three at a time share a timestamp."""
    InboxMessage.objects.bulk_create(
        InboxMessage(consumer="c", message_id=uuid.uuid4(), message_type="t") for _ in range(ROWS)
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for index, pk in enumerate(InboxMessage.objects.order_by("id").values_list("id", flat=True)):
        InboxMessage.objects.filter(pk=pk).update(processed_at=start + timedelta(hours=index // 3))
    return list(InboxMessage.objects.order_by("-processed_at", "-id").values_list("id", flat=True))


def page(url: str = "/list/") -> tuple[list[int], NewestFirst]:
    paginator = NewestFirst()
    request = Request(APIRequestFactory().get(url))
    found = paginator.paginate_queryset(InboxMessage.objects.all(), request)
    return [row.pk for row in found], paginator


def walk(url: str, link: str) -> list[list[int]]:
    pages = []
    next_url: str | None = url
    while next_url:
        ids, paginator = page(next_url)
        pages.append(ids)
        next_url = getattr(paginator, link)
    return pages


def test_next_links_show_every_row_once_in_order(rows: list[int]) -> None:
    pages = walk("/list/", "next")

    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [pk for ids in pages for pk in ids] == rows


def test_previous_links_come_back_the_same_way(rows: list[int]) -> None:
    forward = walk("/list/", "next")
    url: str | None = "/list/"
    while url:  # to the last page
        _, last = page(url)
        url = last.next
    _, first = page()
    assert first.previous is None

    assert last.previous is not None
    assert walk(last.previous, "previous") == forward[-2::-1]


def test_a_row_added_meanwhile_moves_nothing(rows: list[int]) -> None:
    first, paginator = page()
    InboxMessage.objects.create(consumer="c", message_id=uuid.uuid4(), message_type="t")
    assert paginator.next is not None

    second, _ = page(paginator.next)

    assert first + second == rows[:10]


def test_counts_up_to_the_limit(rows: list[int]) -> None:
    _, paginator = page()
    assert paginator.count is None  # 23, beyond the limit of 20

    InboxMessage.objects.filter(pk__in=rows[:5]).delete()
    _, paginator = page()
    assert paginator.count == 18


@pytest.mark.parametrize(("asked", "size"), [("2", 2), ("10", 10), ("99", 10), ("0", 5), ("x", 5)])
def test_page_size(rows: list[int], asked: str, size: int) -> None:
    ids, _ = page(f"/list/?page_size={asked}")

    assert ids == rows[:size]


def _token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not-base64!",
        _token("not a list"),
        _token(["x", ["2026-01-01T00:00:00+00:00", 1]]),
        _token(["n", ["2026-01-01T00:00:00+00:00"]]),
        _token(["n", ["yesterday", 1]]),
        _token(["n", ["2026-01-01T00:00:00+00:00", "one"]]),
        _token(["n", ["2026-01-01T00:00:00+00:00", 2**70]]),
        _token(["n", ["2026-01-01T00:00:00", 1]]),
    ],
)
def test_an_invalid_cursor_is_not_found(rows: list[int], cursor: str) -> None:
    with pytest.raises(NotFound, match="Invalid cursor"):
        page(f"/list/?cursor={cursor}")
