"""JWTs for the whole system, signed with this service's private key (RS256).

Other services hold no user table and verify access tokens with the public key alone
(``identity.authentication``), so an access token says who the caller is: ``token_type``,
``user_id`` (an integer), ``username``, ``is_staff``, ``exp``, ``iat`` and ``jti``.
"""

from django.contrib.auth import authenticate
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken, Token

from accounts.models import User
from accounts.selectors import user_get_active
from errors import ErrorCode


def identity_claims_stamp(token: Token, user: User) -> None:
    token["user_id"] = user.pk  # simplejwt writes a string; every verifier expects an int
    token["username"] = user.get_username()
    token["is_staff"] = bool(user.is_staff)


def token_pair_obtain(*, username: str, password: str) -> dict[str, str]:
    """An access and a refresh token for valid credentials of an active account."""
    user = authenticate(username=username, password=password)
    if not isinstance(user, User) or not user.is_active:
        raise AuthenticationFailed(
            "No active account found with the given credentials.", code=ErrorCode.BAD_CREDENTIALS
        )
    refresh = RefreshToken.for_user(user)
    identity_claims_stamp(refresh, user)  # copied into every access token made from it
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def token_access_refresh(*, refresh: str) -> dict[str, str]:
    """A new access token for a valid refresh token, its claims read afresh from the account.

    A deleted or deactivated account gets no new token, and a change of role shows in the next
    access token rather than only after the refresh token expires.
    """
    try:
        token = RefreshToken(refresh)  # type: ignore[arg-type]  # the stub omits str
        user_id = int(token["user_id"])
    except (TokenError, KeyError, TypeError, ValueError) as exc:
        # Not simplejwt's InvalidToken: its nested detail breaks the one error shape.
        raise AuthenticationFailed(
            "Refresh token is invalid or expired.", code=ErrorCode.TOKEN_NOT_VALID
        ) from exc
    user = user_get_active(user_id=user_id)
    if user is None:
        raise AuthenticationFailed(
            "No active account found for the given token.", code=ErrorCode.NO_ACTIVE_ACCOUNT
        )
    access = token.access_token
    identity_claims_stamp(access, user)
    return {"access": str(access)}
