"""Settings of the user-notification service: the accounts (the JWT issuer) and notifications.

Shared settings come from :func:`service_runtime.settings.build`; what follows is this
service's own. Keys: ``JWT_PRIVATE_KEY`` / ``JWT_PUBLIC_KEY`` (PEM text) win over
``JWT_PRIVATE_KEY_FILE`` / ``JWT_PUBLIC_KEY_FILE``; with none of them set and no key files yet,
a key pair is generated under ``var/keys`` so a laptop run needs no configuration.
"""

import logging
import os
from datetime import timedelta
from pathlib import Path

from identity.keys import ensure_keypair, read_key
from service_runtime.settings import VAR_DIR, build, env_int, env_str

_base = build("user-notification", apps=["accounts", "notifications"], urlconf="config.urls")
globals().update(_base)

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

MESSAGING_HANDLERS = "notifications.handlers.HANDLERS"

JWT_PRIVATE_KEY_FILE = env_str("JWT_PRIVATE_KEY_FILE", str(VAR_DIR / "keys" / "jwt_private.pem"))
_public_key_file: str = _base["JWT_PUBLIC_KEY_FILE"]

if not os.environ.get("JWT_PRIVATE_KEY") and not (
    Path(JWT_PRIVATE_KEY_FILE).exists() or Path(_public_key_file).exists()
):
    # Only when neither key exists: never replace one half of a pair that was provided.
    ensure_keypair(Path(JWT_PRIVATE_KEY_FILE), Path(_public_key_file))
    logging.getLogger(__name__).warning("generated a JWT key pair at %s", JWT_PRIVATE_KEY_FILE)

SIMPLE_JWT = {
    "ALGORITHM": _base["JWT_ALGORITHM"],
    "SIGNING_KEY": read_key("JWT_PRIVATE_KEY", JWT_PRIVATE_KEY_FILE),
    "VERIFYING_KEY": read_key("JWT_PUBLIC_KEY", _public_key_file),
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=env_int("JWT_ACCESS_TOKEN_LIFETIME_SECONDS", 900)),
    "REFRESH_TOKEN_LIFETIME": timedelta(
        seconds=env_int("JWT_REFRESH_TOKEN_LIFETIME_SECONDS", 86400)
    ),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "TOKEN_TYPE_CLAIM": "token_type",
    "JTI_CLAIM": "jti",
    "AUTH_HEADER_TYPES": ("Bearer",),
    "ROTATE_REFRESH_TOKENS": False,
    "UPDATE_LAST_LOGIN": False,
}
