"""GET /api/notifications/ builds its items without the serializer: every page is, byte for
byte, what ``NotificationOutputSerializer`` and DRF's renderer would answer, in three
statements whatever the page holds."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from notifications.apis import NotificationOutputSerializer
from notifications.models import Notification

pytestmark = pytest.mark.django_db

LIST_URL = "/api/notifications/"


@pytest.fixture
def alice(make_user: Any) -> Any:
    return make_user("alice")


@pytest.fixture
def shapes(alice: Any, make_user: Any) -> list[Notification]:
    """An order's notification (read and unread), a product's (no order id), a welcome
    (neither), text beyond ASCII, times on a whole second and with microseconds."""
    made = [
        Notification.objects.create(
            user=alice,
            kind=kind,
            title=title,
            body=body,
            order_id=order_id,
            product_id=product_id,
            source_message_id=uuid.uuid4(),
        )
        for kind, title, body, order_id, product_id in [
            (Notification.Kind.WELCOME, "Welcome", "Bienvenue, Zoë — « merci »", None, None),
            (Notification.Kind.ORDER_SHIPPED, "Order shipped", "On its way.", uuid.uuid4(), None),
            (Notification.Kind.STOCK_LOW, "Stock low", 'Only 2 "left"\n', None, 2**40),
            (Notification.Kind.ORDER_CONFIRMED, "Order confirmed", "", uuid.uuid4(), None),
        ]
    ]
    Notification.objects.filter(pk=made[1].pk).update(
        read_at=timezone.now().replace(microsecond=0) + timedelta(hours=1)
    )
    Notification.objects.filter(pk=made[2].pk).update(
        created_at=made[2].created_at.replace(microsecond=0), read_at=timezone.now()
    )
    Notification.objects.create(  # someone else's
        user=make_user("bob"),
        kind="welcome",
        title="Welcome",
        body="",
        source_message_id=uuid.uuid4(),
    )
    return made


def rendered(page: dict[str, Any]) -> bytes:
    """The page as the serializer and DRF's renderer show it, with the page's links."""
    shown = {
        n.pk: n for n in Notification.objects.filter(pk__in=[i["id"] for i in page["results"]])
    }
    items = NotificationOutputSerializer([shown[i["id"]] for i in page["results"]], many=True).data
    return JSONRenderer().render(
        {"count": page["count"], "next": page["next"], "previous": page["previous"],
         "results": items, "unread_count": page["unread_count"]}
    )  # fmt: skip


def test_every_page_is_the_serializers_byte_for_byte(
    shapes: list[Notification], alice: Any, client_for: Any
) -> None:
    client = client_for(alice)
    for url, expected in ((f"{LIST_URL}?page_size=3", 4), (f"{LIST_URL}?unread=false", 2)):
        seen = 0
        while url:
            response = client.get(url)
            page = response.json()
            assert response.content == rendered(page)
            seen += len(page["results"])
            url = page["next"]
        assert seen == expected


def test_the_bodies_hold_each_shape(
    shapes: list[Notification], alice: Any, client_for: Any
) -> None:
    results = client_for(alice).get(LIST_URL).json()["results"]

    assert [r["id"] for r in results] == sorted(
        (n.pk for n in shapes),
        key=lambda pk: -Notification.objects.get(pk=pk).created_at.timestamp(),
    )
    by_kind = {r["kind"]: r for r in results}
    assert by_kind["welcome"]["order_id"] is None and by_kind["welcome"]["product_id"] is None
    assert by_kind["stock_low"]["product_id"] == 2**40
    assert by_kind["order_shipped"]["read_at"].endswith("Z")
    assert "." not in by_kind["stock_low"]["created_at"]
    assert by_kind["order_confirmed"]["read_at"] is None


def test_three_statements_whatever_the_page_holds(
    alice: Any, client_for: Any, django_assert_num_queries: Any
) -> None:
    for i in range(45):
        Notification.objects.create(
            user=alice, kind="welcome", title=str(i), body="", source_message_id=uuid.uuid4()
        )
    client = client_for(alice)
    first = client.get(f"{LIST_URL}?page_size=40").json()

    for url in (LIST_URL, first["next"], f"{LIST_URL}?unread=true&page_size=100"):
        with django_assert_num_queries(3):  # count, page, unread count
            assert client.get(url).status_code == 200
