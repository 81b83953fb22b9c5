"""DRF authentication from a bearer JWT, verified with the public key alone.

Services other than user-notification hold no user table: the caller is the token's subject.
"""

from __future__ import annotations

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


def verifying_key() -> Any:
    """The public key, ready for ``jwt.decode`` with ``settings.JWT_ALGORITHM``."""
    return _prepared_key(public_key(), settings.JWT_ALGORITHM)


def decode_access_token(token: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            verifying_key(),
            algorithms=[settings.JWT_ALGORITHM],
            options={"require": ["exp", "user_id", "token_type"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise exceptions.AuthenticationFailed("Token has expired.", code="token_expired") from exc
    except jwt.PyJWTError as exc:
        raise exceptions.AuthenticationFailed(
            f"Invalid token: {exc}", code="token_invalid"
        ) from exc
    if claims.get("token_type") != "access":
        raise exceptions.AuthenticationFailed("Not an access token.", code="token_invalid")
    return claims


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
