import json

import pytest
from django.contrib.auth.hashers import check_password

from accounts.models import User
from messaging.envelope import decode
from messaging.models import OutboxMessage

pytestmark = pytest.mark.django_db

URL = "/api/users/register/"
GOOD = {"username": "alice", "email": "alice@example.com", "password": "correct-horse-battery"}


class TestRegistration:
    def test_creates_the_account_and_answers_without_the_password(self, api):
        response = api.post(URL, GOOD, format="json")

        assert response.status_code == 201, response.content
        body = response.json()
        assert set(body) == {"id", "username", "email", "is_staff"}
        assert body["username"] == "alice"
        assert body["is_staff"] is False
        user = User.objects.get(pk=body["id"])
        assert user.password != GOOD["password"]
        assert check_password(GOOD["password"], user.password)

    def test_publishes_user_registered_in_the_outbox(self, api):
        response = api.post(URL, GOOD, format="json", HTTP_X_REQUEST_ID="req-42")

        row = OutboxMessage.objects.get()
        assert row.exchange == "user-notification.events"
        assert row.routing_key == "user.registered"
        assert row.sent_at is None
        envelope = decode(row.body.encode())  # valid envelope and payload, as a consumer sees it
        assert envelope.type == "user.registered"
        assert envelope.source == "user-notification"
        assert envelope.correlation_id == "req-42"
        assert envelope.data == {
            "user_id": response.json()["id"],
            "username": "alice",
            "email": "alice@example.com",
        }
        assert "password" not in json.loads(row.body)["data"]


class TestRegistrationRefused:
    def test_duplicate_username_is_400_with_a_message(self, api, make_user):
        make_user("alice", email="first@example.com")

        response = api.post(URL, GOOD, format="json")

        assert response.status_code == 400
        body = response.json()
        assert body["code"] == "invalid"
        assert "already exists" in body["errors"]["username"][0]
        assert "already exists" in body["detail"]

    def test_username_differing_only_in_case_is_a_duplicate(self, api, make_user):
        make_user("Alice", email="first@example.com")

        response = api.post(URL, GOOD, format="json")

        assert response.status_code == 400
        assert "username" in response.json()["errors"]

    def test_duplicate_email_is_400(self, api, make_user):
        make_user("someone", email="ALICE@example.com")

        response = api.post(URL, GOOD, format="json")

        assert response.status_code == 400
        assert "already exists" in response.json()["errors"]["email"][0]

    @pytest.mark.parametrize("password", ["12345678", "password", "short1", "alice-example"])
    def test_weak_password_is_400(self, api, password):
        response = api.post(URL, {**GOOD, "password": password}, format="json")

        assert response.status_code == 400, password
        assert response.json()["errors"]["password"]

    @pytest.mark.parametrize(
        "change",
        [
            {"email": "not-an-email"},
            {"username": "bad name!"},
            {"username": ""},
            {"password": ""},
        ],
    )
    def test_invalid_field_is_400(self, api, change):
        response = api.post(URL, {**GOOD, **change}, format="json")

        assert response.status_code == 400
        assert set(response.json()["errors"]) == set(change)

    def test_missing_fields_are_400(self, api):
        response = api.post(URL, {}, format="json")

        assert response.status_code == 400
        assert set(response.json()["errors"]) == {"username", "email", "password"}

    def test_refused_registration_writes_nothing(self, api, make_user):
        make_user("alice")
        api.post(URL, GOOD, format="json")
        api.post(URL, {**GOOD, "username": "bob", "password": "123"}, format="json")

        assert User.objects.count() == 1
        assert not OutboxMessage.objects.exists()

    def test_client_cannot_make_itself_staff(self, api):
        response = api.post(URL, {**GOOD, "is_staff": True}, format="json")

        assert response.status_code == 201
        assert User.objects.get().is_staff is False
