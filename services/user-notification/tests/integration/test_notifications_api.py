import uuid

import pytest

from notifications.models import Notification

pytestmark = pytest.mark.django_db

LIST_URL = "/api/notifications/"
READ_ALL_URL = "/api/notifications/read-all/"


def read_url(notification: Notification) -> str:
    return f"/api/notifications/{notification.pk}/read/"


def notify(user, title: str = "Order shipped", *, read: bool = False) -> Notification:
    notification = Notification.objects.create(
        user=user,
        kind=Notification.Kind.ORDER_SHIPPED,
        title=title,
        body="Your order has been shipped.",
        order_id=uuid.uuid4(),
        source_message_id=uuid.uuid4(),
    )
    if read:
        Notification.objects.filter(pk=notification.pk).update(read_at=notification.created_at)
    return notification


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


class TestList:
    def test_own_notifications_newest_first(self, alice, bob, client_for):
        first, second, third = notify(alice, "1"), notify(alice, "2"), notify(alice, "3")
        notify(bob, "not yours")

        response = client_for(alice).get(LIST_URL)

        assert response.status_code == 200
        body = response.json()
        assert [n["id"] for n in body["results"]] == [third.pk, second.pk, first.pk]
        assert body["count"] == 3
        assert set(body["results"][0]) == {
            "id",
            "kind",
            "title",
            "body",
            "order_id",
            "product_id",
            "created_at",
            "read_at",
        }

    def test_is_paginated(self, alice, client_for):
        for i in range(5):
            notify(alice, str(i))

        body = client_for(alice).get(LIST_URL, {"page_size": 2}).json()

        assert body["count"] == 5
        assert len(body["results"]) == 2
        assert body["next"] is not None
        assert [n["title"] for n in body["results"]] == ["4", "3"]

    def test_unread_filter_and_count(self, alice, bob, client_for):
        unread = notify(alice, "unread")
        notify(alice, "read", read=True)
        notify(bob, "bob's unread")

        everything = client_for(alice).get(LIST_URL).json()
        only_unread = client_for(alice).get(LIST_URL, {"unread": "true"}).json()
        only_read = client_for(alice).get(LIST_URL, {"unread": "false"}).json()

        assert everything["count"] == 2
        assert everything["unread_count"] == 1
        assert [n["id"] for n in only_unread["results"]] == [unread.pk]
        assert only_unread["unread_count"] == 1
        assert [n["title"] for n in only_read["results"]] == ["read"]

    def test_bad_filter_is_400(self, alice, client_for):
        assert client_for(alice).get(LIST_URL, {"unread": "perhaps"}).status_code == 400

    def test_empty(self, alice, client_for):
        body = client_for(alice).get(LIST_URL).json()

        assert (body["count"], body["unread_count"], body["results"]) == (0, 0, [])

    def test_no_token_is_401(self, api):
        assert api.get(LIST_URL).status_code == 401


class TestRead:
    def test_marks_one_notification_read(self, alice, client_for):
        notification, other = notify(alice), notify(alice)

        response = client_for(alice).post(read_url(notification))

        assert response.status_code == 200
        assert response.json()["read_at"] is not None
        notification.refresh_from_db()
        other.refresh_from_db()
        assert notification.read_at is not None
        assert other.read_at is None
        assert client_for(alice).get(LIST_URL).json()["unread_count"] == 1

    def test_reading_again_keeps_the_first_time(self, alice, client_for):
        notification = notify(alice)
        first = client_for(alice).post(read_url(notification)).json()["read_at"]

        again = client_for(alice).post(read_url(notification))

        assert again.status_code == 200
        assert again.json()["read_at"] == first

    def test_someone_elses_notification_is_404(self, alice, bob, client_for):
        bobs = notify(bob)

        response = client_for(alice).post(read_url(bobs))

        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
        bobs.refresh_from_db()
        assert bobs.read_at is None

    def test_missing_notification_is_404(self, alice, client_for):
        assert client_for(alice).post("/api/notifications/999999/read/").status_code == 404

    def test_no_token_is_401(self, api, alice):
        assert api.post(read_url(notify(alice))).status_code == 401


class TestReadAll:
    def test_marks_every_own_unread_notification_and_says_how_many(self, alice, bob, client_for):
        notify(alice)
        notify(alice)
        notify(alice, read=True)
        bobs = notify(bob)

        response = client_for(alice).post(READ_ALL_URL)

        assert response.status_code == 200
        assert response.json() == {"marked": 2}
        assert not Notification.objects.filter(user=alice, read_at__isnull=True).exists()
        bobs.refresh_from_db()
        assert bobs.read_at is None

    def test_nothing_to_mark(self, alice, client_for):
        assert client_for(alice).post(READ_ALL_URL).json() == {"marked": 0}

    def test_no_token_is_401(self, api):
        assert api.post(READ_ALL_URL).status_code == 401
