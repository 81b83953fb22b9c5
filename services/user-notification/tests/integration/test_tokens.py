from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from django.conf import settings
from rest_framework.exceptions import AuthenticationFailed

from identity.authentication import decode_access_token
from identity.keys import ensure_keypair
from identity.testing import make_access_token

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/users/token/"
REFRESH_URL = "/api/users/token/refresh/"
ME_URL = "/api/users/me/"
PASSWORD = "correct-horse-battery-staple"


def obtain(api, username="alice", password=PASSWORD):
    return api.post(TOKEN_URL, {"username": username, "password": password}, format="json")


def public_key_only() -> str:
    return Path(settings.JWT_PUBLIC_KEY_FILE).read_text()


class TestObtain:
    def test_valid_credentials_give_an_access_and_a_refresh_token(self, api, make_user):
        make_user("alice")

        response = obtain(api)

        assert response.status_code == 200, response.content
        assert set(response.json()) == {"access", "refresh"}

    def test_access_token_carries_the_identity_claims(self, api, make_user):
        user = make_user("alice")

        claims = decode_access_token(obtain(api).json()["access"])

        assert claims["token_type"] == "access"
        assert claims["user_id"] == user.pk
        assert isinstance(claims["user_id"], int)
        assert claims["username"] == "alice"
        assert claims["is_staff"] is False
        assert {"exp", "iat", "jti"} <= set(claims)

    def test_staff_tokens_say_so(self, api, make_user):
        make_user("boss", is_staff=True)

        claims = decode_access_token(obtain(api, "boss").json()["access"])

        assert claims["is_staff"] is True

    def test_tokens_are_rs256_and_verify_with_the_public_key_alone(self, api, make_user):
        make_user("alice")
        tokens = obtain(api).json()

        assert jwt.get_unverified_header(tokens["access"])["alg"] == "RS256"
        claims = jwt.decode(tokens["access"], public_key_only(), algorithms=["RS256"])
        assert claims["username"] == "alice"
        refresh = jwt.decode(tokens["refresh"], public_key_only(), algorithms=["RS256"])
        assert refresh["token_type"] == "refresh"


class TestObtainRefused:
    def test_wrong_password_is_401(self, api, make_user):
        make_user("alice")

        response = obtain(api, password="wrong-password")

        assert response.status_code == 401
        assert response.json()["code"] == "bad_credentials"
        assert "access" not in response.json()

    def test_unknown_user_is_401(self, api):
        assert obtain(api, "nobody").status_code == 401

    def test_inactive_user_is_401(self, api, make_user):
        make_user("alice", is_active=False)

        assert obtain(api).status_code == 401

    def test_missing_fields_are_400(self, api):
        response = api.post(TOKEN_URL, {"username": "alice"}, format="json")

        assert response.status_code == 400
        assert "password" in response.json()["errors"]


class TestRefresh:
    def test_refresh_gives_a_new_valid_access_token(self, api, make_user):
        user = make_user("alice")
        refresh = obtain(api).json()["refresh"]

        response = api.post(REFRESH_URL, {"refresh": refresh}, format="json")

        assert response.status_code == 200, response.content
        claims = decode_access_token(response.json()["access"])
        assert claims["user_id"] == user.pk
        assert claims["username"] == "alice"

    def test_refreshed_token_reflects_a_change_of_role(self, api, make_user):
        user = make_user("alice")
        refresh = obtain(api).json()["refresh"]
        user.is_staff = True
        user.save()

        access = api.post(REFRESH_URL, {"refresh": refresh}, format="json").json()["access"]

        assert decode_access_token(access)["is_staff"] is True

    def test_refresh_for_a_deactivated_account_is_401(self, api, make_user):
        user = make_user("alice")
        refresh = obtain(api).json()["refresh"]
        user.is_active = False
        user.save()

        assert api.post(REFRESH_URL, {"refresh": refresh}, format="json").status_code == 401

    def test_refresh_for_a_deleted_account_is_401(self, api, make_user):
        user = make_user("alice")
        refresh = obtain(api).json()["refresh"]
        user.delete()

        assert api.post(REFRESH_URL, {"refresh": refresh}, format="json").status_code == 401

    def test_an_access_token_is_not_a_refresh_token(self, api, make_user):
        make_user("alice")
        access = obtain(api).json()["access"]

        assert api.post(REFRESH_URL, {"refresh": access}, format="json").status_code == 401

    def test_garbage_is_401(self, api):
        response = api.post(REFRESH_URL, {"refresh": "not.a.token"}, format="json")

        assert response.status_code == 401
        assert response.json() == {
            "detail": "Refresh token is invalid or expired.",
            "code": "token_not_valid",
        }


class TestForeignKeys:
    @pytest.fixture
    def other_private_key(self, tmp_path) -> Path:
        ensure_keypair(tmp_path / "other.pem", tmp_path / "other.pub")
        return tmp_path / "other.pem"

    def test_a_token_signed_by_another_key_is_refused(self, other_private_key, make_user):
        user = make_user("alice")
        forged = make_access_token(other_private_key, user_id=user.pk, is_staff=True)

        with pytest.raises(AuthenticationFailed):
            decode_access_token(forged)

    def test_me_refuses_a_token_signed_by_another_key(self, api, other_private_key, make_user):
        user = make_user("alice")
        forged = make_access_token(other_private_key, user_id=user.pk)

        response = api.get(ME_URL, HTTP_AUTHORIZATION=f"Bearer {forged}")

        assert response.status_code == 401

    def test_a_refresh_token_signed_by_another_key_is_refused(self, api, other_private_key):
        forged = jwt.encode(
            {"token_type": "refresh", "user_id": 1, "exp": 9999999999, "jti": "x"},
            other_private_key.read_text(),
            algorithm="RS256",
        )

        assert api.post(REFRESH_URL, {"refresh": forged}, format="json").status_code == 401


class TestMe:
    def test_me_shows_the_account(self, api, make_user):
        user = make_user("alice")
        access = obtain(api).json()["access"]

        response = api.get(ME_URL, HTTP_AUTHORIZATION=f"Bearer {access}")

        assert response.status_code == 200
        assert response.json() == {
            "id": user.pk,
            "username": "alice",
            "email": "alice@example.com",
            "is_staff": False,
            "first_name": "",
            "last_name": "",
            "email_notifications": True,
        }

    def test_no_token_is_401(self, api):
        response = api.get(ME_URL)

        assert response.status_code == 401
        assert response.json()["code"] == "not_authenticated"

    def test_expired_token_is_401(self, api, make_user):
        user = make_user("alice")
        expired = make_access_token(
            settings.JWT_PRIVATE_KEY_FILE, user_id=user.pk, lifetime=timedelta(seconds=-1)
        )

        response = api.get(ME_URL, HTTP_AUTHORIZATION=f"Bearer {expired}")

        assert response.status_code == 401
        assert response.json()["code"] == "token_expired"

    def test_a_refresh_token_is_not_an_access_token(self, api, make_user):
        make_user("alice")
        refresh = obtain(api).json()["refresh"]

        assert api.get(ME_URL, HTTP_AUTHORIZATION=f"Bearer {refresh}").status_code == 401

    def test_token_of_a_deleted_account_is_401(self, api, make_user):
        user = make_user("alice")
        access = obtain(api).json()["access"]
        user.delete()

        assert api.get(ME_URL, HTTP_AUTHORIZATION=f"Bearer {access}").status_code == 401
