"""Abuse limits of the public account endpoints: failed sign-ins per username and per client
address, registrations per address. A refusal is a 429 in the API's error shape with
``Retry-After``."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.models import User
from service_runtime.rates import Rate
from tests.conftest import PASSWORD

TOKEN = "/api/users/token/"
REGISTER = "/api/users/register/"


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def limits(settings: object) -> object:
    settings.THROTTLE_LOGIN_FAILURES_PER_USERNAME = Rate(10, 900)  # type: ignore[attr-defined]
    settings.THROTTLE_LOGIN_FAILURES_PER_ADDRESS = Rate(30, 900)  # type: ignore[attr-defined]
    settings.THROTTLE_REGISTRATIONS_PER_ADDRESS = Rate(5, 3600)  # type: ignore[attr-defined]
    return settings


def sign_in(username: str, password: str, address: str = "198.51.100.1") -> Any:
    return APIClient().post(
        TOKEN, {"username": username, "password": password}, format="json", REMOTE_ADDR=address
    )


def assert_throttled(response: Any, *, within: int) -> None:
    assert response.status_code == 429, response.content
    body = response.json()
    assert body["code"] == "throttled" and body["detail"], body
    assert 1 <= int(response["Retry-After"]) <= within


def test_forty_wrong_passwords_are_refused_after_the_limit_whatever_the_address(
    limits: object, make_user: Callable[..., User]
) -> None:
    make_user("alice")
    answers = [
        sign_in("alice", f"wrong-{n}", address=f"198.51.100.{n % 4}").status_code for n in range(40)
    ]
    assert answers == [401] * 10 + [429] * 30
    assert_throttled(sign_in("alice", "wrong-again"), within=900)
    # The right password is refused too until the window ends: guessing it gains nothing.
    assert_throttled(sign_in("Alice", PASSWORD, address="203.0.113.9"), within=900)
    # Another account, from the same addresses, is not affected.
    make_user("bob")
    assert sign_in("bob", PASSWORD, address="198.51.100.1").status_code == 200


def test_one_address_trying_many_accounts_is_refused_after_its_limit(
    limits: object, make_user: Callable[..., User]
) -> None:
    make_user("carol")
    for n in range(30):
        assert sign_in(f"nobody-{n}", "guess", address="192.0.2.7").status_code == 401
    assert_throttled(sign_in("carol", PASSWORD, address="192.0.2.7"), within=900)
    # The same account from another address still signs in.
    assert sign_in("carol", PASSWORD, address="192.0.2.8").status_code == 200


def test_a_successful_sign_in_spends_nothing(
    limits: object, make_user: Callable[..., User]
) -> None:
    make_user("dave")
    for _ in range(25):
        assert sign_in("dave", PASSWORD).status_code == 200
    for _ in range(9):
        assert sign_in("dave", "wrong").status_code == 401
    assert sign_in("dave", PASSWORD).status_code == 200  # nine failures: one left
    assert sign_in("dave", "wrong").status_code == 401
    assert_throttled(sign_in("dave", PASSWORD), within=900)


def test_a_registration_flood_from_one_address_is_refused(limits: object, db: None) -> None:
    def register(n: int, address: str) -> Any:
        body = {"username": f"flood-{n}", "email": f"flood-{n}@example.com", "password": "x" * 12}
        return APIClient().post(REGISTER, body, format="json", REMOTE_ADDR=address)

    answers = [register(n, "198.51.100.50").status_code for n in range(8)]
    assert answers == [201] * 5 + [429] * 3
    assert_throttled(register(99, "198.51.100.50"), within=3600)
    assert User.objects.filter(username__startswith="flood-").count() == 5
    assert register(100, "198.51.100.51").status_code == 201  # another address


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_callers(
    limits: object, make_user: Callable[..., User], settings: object
) -> None:
    settings.THROTTLE_PROXY_COUNT = 1  # type: ignore[attr-defined]
    make_user("erin")

    def via_gateway(client_address: str) -> int:
        return (
            APIClient()
            .post(
                TOKEN,
                {"username": f"ghost-{client_address}", "password": "guess"},
                format="json",
                REMOTE_ADDR="10.0.0.2",  # the gateway
                HTTP_X_FORWARDED_FOR=f"6.6.6.6, {client_address}",  # the first hop is the caller's
            )
            .status_code
        )

    assert [via_gateway("192.0.2.20") for _ in range(31)][-1] == 429
    assert via_gateway("192.0.2.21") == 401  # another caller behind the same gateway


def test_limits_off_refuse_nothing(make_user: Callable[..., User]) -> None:
    make_user("frank")
    assert {sign_in("frank", "wrong").status_code for _ in range(15)} == {401}
