from io import StringIO

import pytest
from django.core.management import call_command

from accounts.models import User

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_env(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "admin")
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "admin@example.com")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "admin-password-1")


def ensure_superuser() -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("ensure_superuser", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


class TestEnsureSuperuser:
    def test_creates_the_staff_account(self, superuser_env, api):
        out, _ = ensure_superuser()

        user = User.objects.get(username="admin")
        assert (user.is_staff, user.is_superuser, user.email) == (True, True, "admin@example.com")
        assert "created" in out
        tokens = api.post(
            "/api/users/token/",
            {"username": "admin", "password": "admin-password-1"},
            format="json",
        )
        assert tokens.status_code == 200

    def test_is_idempotent(self, superuser_env):
        ensure_superuser()
        out, _ = ensure_superuser()

        assert User.objects.filter(username="admin").count() == 1
        assert "already exists" in out

    def test_does_nothing_when_the_variables_are_not_set(self, monkeypatch):
        for name in ("USERNAME", "EMAIL", "PASSWORD"):
            monkeypatch.delenv(f"DJANGO_SUPERUSER_{name}", raising=False)

        out, _ = ensure_superuser()

        assert not User.objects.exists()
        assert "not set" in out

    def test_never_promotes_an_existing_customer(self, superuser_env, make_user):
        make_user("admin")

        _, err = ensure_superuser()

        assert User.objects.get(username="admin").is_staff is False
        assert "not staff" in err


class TestCreatesuperuser:
    def test_djangos_noinput_createsuperuser_works_with_the_user_model(self, superuser_env):
        call_command("createsuperuser", interactive=False, stdout=StringIO())

        user = User.objects.get(username="admin")
        assert user.is_staff and user.is_superuser
        assert user.check_password("admin-password-1")
