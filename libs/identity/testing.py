"""Tokens for tests: sign with a private key the way the user-notification service does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt


def make_access_token(
    private_key_path: Path | str,
    *,
    user_id: int,
    username: str = "someone",
    is_staff: bool = False,
    lifetime: timedelta = timedelta(minutes=15),
) -> str:
    now = datetime.now(UTC)
    claims = {
        "token_type": "access",
        "user_id": user_id,
        "username": username,
        "is_staff": is_staff,
        "iat": now,
        "exp": now + lifetime,
        "jti": f"test-{user_id}-{now.timestamp()}",
    }
    return jwt.encode(claims, Path(private_key_path).read_text(), algorithm="RS256")
