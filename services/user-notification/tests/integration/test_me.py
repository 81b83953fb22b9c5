"""GET and PATCH /api/users/me/: the caller's own account and e-mail preference."""

import uuid

import pytest

from notifications.models import EmailDelivery, Notification

pytestmark = pytest.mark.django_db

URL = "/api/users/me/"


class TestRead:
    def test_shows_the_e_mail_preference_and_names(self, make_user, client_for):
        alice = make_user("alice", first_name="Alice")

        body = client_for(alice).get(URL).json()

        assert body["email_notifications"] is True
        assert (body["first_name"], body["last_name"]) == ("Alice", "")


class TestTurningEmailOff:
    def test_patch_turns_it_off(self, make_user, client_for):
        alice = make_user("alice")

        response = client_for(alice).patch(URL, {"email_notifications": False}, format="json")

        assert response.status_code == 200, response.content
        assert response.json()["email_notifications"] is False
        alice.refresh_from_db()
        assert alice.email_notifications is False
        assert client_for(alice).get(URL).json()["email_notifications"] is False

    def test_then_notifications_come_without_e_mail(
        self, make_user, client_for, make_message, deliver
    ):
        alice = make_user("alice")
        client_for(alice).patch(URL, {"email_notifications": False}, format="json")
        data = {"order_id": str(uuid.uuid4()), "user_id": alice.pk, "total": "1.00"}

        deliver(make_message("order.confirmed", data))

        assert Notification.objects.filter(user=alice).count() == 1
        assert not EmailDelivery.objects.exists()

    def test_and_back_on(self, make_user, client_for):
        alice = make_user("alice", email_notifications=False)

        response = client_for(alice).patch(URL, {"email_notifications": True}, format="json")

        assert response.json()["email_notifications"] is True


class TestOtherFields:
    def test_address_and_names_can_be_changed(self, make_user, client_for):
        alice = make_user("alice")

        response = client_for(alice).patch(
            URL,
            {"email": "alice@NEW.example", "first_name": "Alice", "last_name": "Liddell"},
            format="json",
        )

        assert response.status_code == 200, response.content
        alice.refresh_from_db()
        assert (alice.email, alice.first_name, alice.last_name) == (
            "alice@new.example",
            "Alice",
            "Liddell",
        )
        assert alice.email_notifications is True  # untouched

    def test_an_empty_patch_changes_nothing(self, make_user, client_for):
        alice = make_user("alice")

        response = client_for(alice).patch(URL, {}, format="json")

        assert response.status_code == 200
        assert response.json()["email"] == "alice@example.com"

    def test_keeping_ones_own_address_is_fine(self, make_user, client_for):
        alice = make_user("alice")

        response = client_for(alice).patch(URL, {"email": "ALICE@example.com"}, format="json")

        assert response.status_code == 200, response.content


class TestRefused:
    @pytest.mark.parametrize(
        "change",
        [
            {"username": "mallory"},
            {"is_staff": True},
            {"password": "new-password-123"},
            {"id": 1},
            {"email_notifications": False, "is_superuser": True},
        ],
        ids=["username", "is_staff", "password", "id", "mixed"],
    )
    def test_fields_that_cannot_be_changed_are_400_and_nothing_changes(
        self, make_user, client_for, change
    ):
        alice = make_user("alice")

        response = client_for(alice).patch(URL, change, format="json")

        assert response.status_code == 400
        body = response.json()
        assert body["code"]
        assert set(body["errors"]) == set(change) - {"email_notifications"}
        alice.refresh_from_db()
        assert (alice.username, alice.is_staff, alice.email_notifications) == (
            "alice",
            False,
            True,
        )

    @pytest.mark.parametrize(
        "change",
        [
            {"email_notifications": None},
            {"email_notifications": "sometimes"},
            {"email": "not-an-address"},
            {"email": ""},
            {"first_name": "x" * 151},
        ],
        ids=["null", "not-boolean", "bad-address", "blank-address", "long-name"],
    )
    def test_invalid_values_are_400(self, make_user, client_for, change):
        alice = make_user("alice")

        response = client_for(alice).patch(URL, change, format="json")

        assert response.status_code == 400
        assert set(response.json()["errors"]) == set(change)

    def test_someone_elses_address_is_400(self, make_user, client_for):
        alice = make_user("alice")
        make_user("bob")

        response = client_for(alice).patch(URL, {"email": "BOB@example.com"}, format="json")

        assert response.status_code == 400
        assert "already exists" in response.json()["errors"]["email"][0]

    def test_a_body_that_is_not_an_object_is_400(self, make_user, client_for):
        response = client_for(make_user("alice")).patch(URL, [1, 2], format="json")

        assert response.status_code == 400

    def test_no_token_is_401(self, api):
        assert api.patch(URL, {"email_notifications": False}, format="json").status_code == 401

    def test_put_is_not_allowed(self, make_user, client_for):
        response = client_for(make_user("alice")).put(URL, {}, format="json")

        assert response.status_code == 405
