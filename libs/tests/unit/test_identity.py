"""Tokens are verified with the public key alone; anything else is refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
from jwt.algorithms import RSAAlgorithm
from rest_framework import exceptions
from rest_framework.test import APIRequestFactory

from identity import authentication
from identity.authentication import (
    JWTAuthentication,
    TokenUser,
    _prepared_key,
    _verified_claims,
    decode_access_token,
)
from identity.keys import ensure_keypair, read_key
from identity.permissions import IsStaff, IsStaffOrReadOnly
from identity.testing import make_access_token


@pytest.fixture(scope="session")
def keypairs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("keys")
    pairs = {}
    for name in ("right", "other"):
        private, public = root / name / "private.pem", root / name / "public.pem"
        assert ensure_keypair(private, public) is True
        pairs[name] = (private, public)
    return pairs


@pytest.fixture(autouse=True)
def public_key(
    keypairs: dict[str, tuple[Path, Path]], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    monkeypatch.delenv("JWT_PUBLIC_KEY", raising=False)
    settings.JWT_PUBLIC_KEY_FILE = str(keypairs["right"][1])
    read_key.cache_clear()
    yield
    read_key.cache_clear()


def _sign(private: Path, **claims: Any) -> str:
    now = datetime.now(UTC)
    base = {"token_type": "access", "user_id": 5, "iat": now, "exp": now + timedelta(minutes=5)}
    base.update(claims)
    return jwt.encode(
        {k: v for k, v in base.items() if v is not None}, private.read_text(), "RS256"
    )


def test_ensure_keypair_keeps_an_existing_pair(keypairs: dict[str, tuple[Path, Path]]) -> None:
    private, public = keypairs["right"]
    before = public.read_bytes()
    assert ensure_keypair(private, public) is False
    assert public.read_bytes() == before
    assert private.stat().st_mode & 0o777 == 0o600
    assert b"PUBLIC KEY" in before


def test_a_token_signed_with_the_right_key_is_accepted(
    keypairs: dict[str, tuple[Path, Path]],
) -> None:
    token = make_access_token(keypairs["right"][0], user_id=42, username="ann", is_staff=True)
    claims = decode_access_token(token)
    assert claims["user_id"] == 42
    assert claims["username"] == "ann"

    request = APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {token}")
    result = JWTAuthentication().authenticate(request)
    assert result is not None
    user, _ = result
    assert user == TokenUser(id=42, username="ann", is_staff=True)
    assert user.pk == 42 and user.is_authenticated and not user.is_anonymous


def test_an_expired_token_is_refused(keypairs: dict[str, tuple[Path, Path]]) -> None:
    token = make_access_token(keypairs["right"][0], user_id=1, lifetime=timedelta(seconds=-1))
    with pytest.raises(exceptions.AuthenticationFailed, match="Token has expired") as info:
        decode_access_token(token)
    assert info.value.get_codes() == "token_expired"


def test_a_token_signed_with_another_key_is_refused(
    keypairs: dict[str, tuple[Path, Path]],
) -> None:
    token = make_access_token(keypairs["other"][0], user_id=1)
    with pytest.raises(exceptions.AuthenticationFailed, match="Invalid token: Signature") as info:
        decode_access_token(token)
    assert info.value.get_codes() == "token_invalid"


def test_a_refresh_token_is_refused(keypairs: dict[str, tuple[Path, Path]]) -> None:
    token = _sign(keypairs["right"][0], token_type="refresh")
    with pytest.raises(exceptions.AuthenticationFailed, match="Not an access token"):
        decode_access_token(token)


@pytest.mark.parametrize("missing", ["exp", "user_id", "token_type"])
def test_a_token_without_a_required_claim_is_refused(
    keypairs: dict[str, tuple[Path, Path]], missing: str
) -> None:
    token = _sign(keypairs["right"][0], **{missing: None})
    with pytest.raises(exceptions.AuthenticationFailed, match=f'"{missing}"'):
        decode_access_token(token)


def test_an_unsigned_or_symmetric_token_is_refused(
    keypairs: dict[str, tuple[Path, Path]],
) -> None:
    claims = {"token_type": "access", "user_id": 1, "exp": datetime.now(UTC) + timedelta(hours=1)}
    unsigned = jwt.encode(claims, "", algorithm="none")
    with pytest.raises(exceptions.AuthenticationFailed, match="Invalid token"):
        decode_access_token(unsigned)
    # The public key used as an HMAC secret must not verify (algorithm confusion).
    forged = jwt.encode(claims, "a shared secret that nobody should ever accept", algorithm="HS256")
    with pytest.raises(exceptions.AuthenticationFailed, match="Invalid token"):
        decode_access_token(forged)


def test_a_tampered_token_is_refused(keypairs: dict[str, tuple[Path, Path]]) -> None:
    header, _, signature = make_access_token(keypairs["right"][0], user_id=1).split(".")
    other_payload = make_access_token(keypairs["right"][0], user_id=2).split(".")[1]
    with pytest.raises(exceptions.AuthenticationFailed, match="Invalid token"):
        decode_access_token(f"{header}.{other_payload}.{signature}")


def test_the_public_key_can_come_from_the_environment(
    keypairs: dict[str, tuple[Path, Path]], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.JWT_PUBLIC_KEY_FILE = "/nonexistent/public.pem"
    pem = keypairs["right"][1].read_text().replace("\n", "\\n")
    monkeypatch.setenv("JWT_PUBLIC_KEY", pem)
    read_key.cache_clear()
    token = make_access_token(keypairs["right"][0], user_id=3)
    assert decode_access_token(token)["user_id"] == 3


def test_the_public_key_is_parsed_once_per_process(
    keypairs: dict[str, tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = {
        user_id: make_access_token(keypairs["right"][0], user_id=user_id) for user_id in (1, 2, 3)
    }
    real_prepare = RSAAlgorithm.prepare_key
    parsed: list[object] = []

    def prepare(self: RSAAlgorithm, key: Any) -> Any:
        if isinstance(key, str | bytes):
            parsed.append(key)
        return real_prepare(self, key)

    monkeypatch.setattr(RSAAlgorithm, "prepare_key", prepare)
    _prepared_key.cache_clear()

    for user_id, token in tokens.items():
        assert decode_access_token(token)["user_id"] == user_id

    assert parsed == [keypairs["right"][1].read_text()]


def test_a_token_is_verified_once_per_process(
    keypairs: dict[str, tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = make_access_token(keypairs["right"][0], user_id=7)
    real_verify = RSAAlgorithm.verify
    verified: list[bytes] = []

    def verify(self: RSAAlgorithm, msg: bytes, key: Any, sig: bytes) -> bool:
        verified.append(msg)
        return real_verify(self, msg, key, sig)

    monkeypatch.setattr(RSAAlgorithm, "verify", verify)
    _verified_claims.cache_clear()

    first, second = decode_access_token(token), decode_access_token(token)

    assert first == second and first["user_id"] == 7
    assert len(verified) == 1
    first["user_id"] = 8  # a caller's copy: the next request still sees the token's claims
    assert decode_access_token(token)["user_id"] == 7


def test_a_verified_token_is_refused_once_it_expires(
    keypairs: dict[str, tuple[Path, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = make_access_token(keypairs["right"][0], user_id=1, lifetime=timedelta(minutes=1))
    assert decode_access_token(token)["user_id"] == 1
    later = datetime.now(UTC) + timedelta(minutes=1)
    monkeypatch.setattr(authentication, "time", SimpleNamespace(time=later.timestamp))

    with pytest.raises(exceptions.AuthenticationFailed, match="Token has expired") as info:
        decode_access_token(token)
    assert info.value.get_codes() == "token_expired"


def test_a_new_public_key_is_used_as_soon_as_it_is_read(
    keypairs: dict[str, tuple[Path, Path]], settings: Any
) -> None:
    right = make_access_token(keypairs["right"][0], user_id=1)
    other = make_access_token(keypairs["other"][0], user_id=2)
    assert decode_access_token(right)["user_id"] == 1

    settings.JWT_PUBLIC_KEY_FILE = str(keypairs["other"][1])
    read_key.cache_clear()

    assert decode_access_token(other)["user_id"] == 2
    with pytest.raises(exceptions.AuthenticationFailed, match="Invalid token: Signature"):
        decode_access_token(right)


def test_a_public_key_that_does_not_parse_refuses_every_token(
    keypairs: dict[str, tuple[Path, Path]], settings: Any, tmp_path: Path
) -> None:
    broken = tmp_path / "public.pem"
    broken.write_text("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")
    settings.JWT_PUBLIC_KEY_FILE = str(broken)
    read_key.cache_clear()
    token = make_access_token(keypairs["right"][0], user_id=1)

    for _ in range(2):
        with pytest.raises(exceptions.AuthenticationFailed, match="Invalid token: Could not"):
            decode_access_token(token)


@pytest.mark.parametrize(
    ("header", "outcome"),
    [
        (None, None),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer", "Authorization header must be 'Bearer <token>'."),
        ("Bearer a b", "Authorization header must be 'Bearer <token>'."),
        ("Bearer not-a-jwt", "Invalid token"),
    ],
)
def test_authorization_header_shapes(header: str | None, outcome: str | None) -> None:
    factory = APIRequestFactory()
    request = factory.get("/") if header is None else factory.get("/", HTTP_AUTHORIZATION=header)
    auth = JWTAuthentication()
    if outcome is None:
        assert auth.authenticate(request) is None
    else:
        with pytest.raises(exceptions.AuthenticationFailed, match=outcome):
            auth.authenticate(request)
    assert auth.authenticate_header(request).startswith("Bearer")


class _Request:
    def __init__(self, method: str, user: object) -> None:
        self.method = method
        self.user = user


def test_staff_permissions() -> None:
    staff = TokenUser(id=1, username="s", is_staff=True)
    customer = TokenUser(id=2, username="c", is_staff=False)
    assert IsStaff().has_permission(_Request("POST", staff), None)  # type: ignore[arg-type]
    assert not IsStaff().has_permission(_Request("GET", customer), None)  # type: ignore[arg-type]
    assert not IsStaff().has_permission(_Request("GET", None), None)  # type: ignore[arg-type]
    read_only = IsStaffOrReadOnly()
    assert read_only.has_permission(_Request("GET", None), None)  # type: ignore[arg-type]
    assert not read_only.has_permission(_Request("PATCH", customer), None)  # type: ignore[arg-type]
    assert read_only.has_permission(_Request("DELETE", staff), None)  # type: ignore[arg-type]
