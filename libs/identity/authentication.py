"""DRF authentication from a bearer JWT, verified with the public key alone.

Services other than user-notification hold no user table: the caller is the token's subject.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jwt
from django.conf import settings
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from identity.keys import read_key


@dataclass(frozen=True)
class TokenUser:
    """The authenticated caller, as the access token describes them."""

    id: int
    username: str
    is_staff: bool

    is_authenticated = True
    is_anonymous = False

    @property
    def pk(self) -> int:
        return self.id


def public_key() -> str:
    return read_key("JWT_PUBLIC_KEY", settings.JWT_PUBLIC_KEY_FILE)


@lru_cache(maxsize=8)
def _prepared_key(pem: str, algorithm: str) -> Any:
    """``pem`` parsed once per process for ``algorithm`` (PyJWT would parse it per token).

    Keyed by the PEM text itself, so the key in use is always the one :func:`public_key`
    reads. A key that does not parse is returned as text: ``jwt.decode`` then refuses every
    token with the same error as before.
    """
    try:
        return jwt.get_algorithm_by_name(algorithm).prepare_key(pem)
    except (jwt.PyJWTError, NotImplementedError, TypeError, ValueError):
        return pem


@lru_cache(maxsize=1024)
def _verified_claims(token: str, pem: str, algorithm: str) -> dict[str, Any]:
    """The claims of ``token``, verified once per process and key: a caller's next requests
    skip PyJWT's parsing and the signature check (a fifth of a small request's CPU).

    Only tokens that verified are kept (an exception is not cached), so the cache holds what
    our key signed, at most ``maxsize`` of them. Keyed by the PEM text too: a new key verifies
    every token afresh. Expiry is checked on every use by :func:`decode_access_token`.
    """
    return jwt.decode(
        token,
        _prepared_key(pem, algorithm),
        algorithms=[algorithm],
        options={"require": ["exp", "user_id", "token_type"]},
    )


def decode_access_token(token: str) -> dict[str, Any]:
    try:
        claims = _verified_claims(token, public_key(), settings.JWT_ALGORITHM)
        # PyJWT's own test, repeated because the verified claims outlive the first check.
        if int(claims["exp"]) <= time.time():
            raise jwt.ExpiredSignatureError("Signature has expired")
    except jwt.ExpiredSignatureError as exc:
        raise exceptions.AuthenticationFailed("Token has expired.", code="token_expired") from exc
    except jwt.PyJWTError as exc:
        raise exceptions.AuthenticationFailed(
            f"Invalid token: {exc}", code="token_invalid"
        ) from exc
    if claims.get("token_type") != "access":
        raise exceptions.AuthenticationFailed("Not an access token.", code="token_invalid")
    return dict(claims)  # a copy: the cached claims are shared by every request


class JWTAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[TokenUser, dict[str, Any]] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        claims = decode_access_token(header[1].decode("latin-1"))
        user = TokenUser(
            id=int(claims["user_id"]),
            username=str(claims.get("username", "")),
            is_staff=bool(claims.get("is_staff", False)),
        )
        return user, claims

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'
