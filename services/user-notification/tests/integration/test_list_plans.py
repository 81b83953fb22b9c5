"""GET /api/notifications/ on a few thousand notifications: every statement reads a few rows
through an index, never the whole table, with or without the unread filter, on any page."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.utils import timezone

from notifications.apis import NotificationPagination
from notifications.models import Notification
from service_runtime import query_plans
from service_runtime.query_plans import statements

pytestmark = pytest.mark.django_db

PER_USER = 150
USERS = 20
URL = "/api/notifications/"
# At most the caller's own rows (the count stops at 40 here, a page is 20; on so few rows
# PostgreSQL may rather sort the caller's 150 than walk an index in order): far from the 3000
# of the whole table.
READ_LIMIT = PER_USER


@pytest.fixture
def alice(make_user, monkeypatch: pytest.MonkeyPatch):
    users = [make_user(f"user{i}") for i in range(USERS)]
    now = timezone.now()
    Notification.objects.bulk_create(
        Notification(
            user=user,
            kind=Notification.Kind.ORDER_CONFIRMED,
            title="Order confirmed",
            body="",
            order_id=uuid.uuid4(),
            source_message_id=uuid.uuid4(),
            read_at=now if i % 3 else None,
        )
        for user in users
        for i in range(PER_USER)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE notifications_notification "
            "SET created_at = created_at - random() * interval '365 days'"
        )
        cursor.execute("ANALYZE notifications_notification")
    monkeypatch.setattr(NotificationPagination, "count_limit", 40)
    return users[0]


def most_rows_read(client, url: str) -> int:
    """The most rows any statement of the request read from one table."""
    with statements() as run:
        response = client.get(url)
    assert response.status_code == 200, response.content
    assert len(run) == 3  # count, page, unread count
    return query_plans.most_rows_read(run)


@pytest.mark.parametrize("query", ["", "?unread=true", "?unread=false&page_size=30"])
def test_every_statement_reads_an_index(alice, client_for, query: str) -> None:
    client = client_for(alice)
    first = client.get(f"{URL}{query}").json()

    assert most_rows_read(client, f"{URL}{query}") <= READ_LIMIT
    assert most_rows_read(client, first["next"]) <= READ_LIMIT


def test_counts_up_to_the_limit(alice, client_for) -> None:
    body = client_for(alice).get(URL).json()

    assert body["count"] is None  # 150 of them: more than the limit
    assert (
        body["unread_count"]
        == Notification.objects.filter(user=alice, read_at__isnull=True).count()
    )
