"""Settings of the user-notification service: the accounts (the JWT issuer) and notifications.

Shared settings come from :func:`service_runtime.settings.build`; what follows is this
service's own. Keys: ``JWT_PRIVATE_KEY`` / ``JWT_PUBLIC_KEY`` (PEM text) win over
``JWT_PRIVATE_KEY_FILE`` / ``JWT_PUBLIC_KEY_FILE``; with none of them set and no key files yet,
a key pair is generated under ``var/keys`` so a laptop run needs no configuration.

E-mail goes through Django's e-mail framework, configured from the ``EMAIL_*`` variables; the
default backend prints each message on the console, so a laptop run sends nothing anywhere.
"""

import logging
import os
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from identity.keys import ensure_keypair, read_key
from service_runtime.rates import parse_rate
from service_runtime.settings import VAR_DIR, build, env_bool, env_int, env_str

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
# Notifications are off the saga's path: a tenth of a second more before a notice is written
# lets its consumer apply a trickle of events a batch per transaction instead of one each.
MESSAGING_GATHER_MS = env_int("MESSAGING_GATHER_MS", 100)
# What `manage.py run_worker` runs, each in a thread of its own (messaging.worker.Job).
WORKER_JOBS = (
    "messaging.consumer.Consumer",
    "messaging.relay.OutboxRelay",
    "notifications.email_worker.EmailDeliveryJob",
    "messaging.pruning.PruneJob",
)

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

# Abuse limits ("N/[k]unit", unit s, m, h or d; "off": no limit). Failed token requests per
# username (whatever the address: guessing one account's password) and per client address
# (whatever the username: trying many accounts); registrations per client address.
THROTTLE_LOGIN_FAILURES_PER_USERNAME = parse_rate(
    env_str("THROTTLE_LOGIN_FAILURES_PER_USERNAME", "10/15m"),
    name="THROTTLE_LOGIN_FAILURES_PER_USERNAME",
)
THROTTLE_LOGIN_FAILURES_PER_ADDRESS = parse_rate(
    env_str("THROTTLE_LOGIN_FAILURES_PER_ADDRESS", "50/15m"),
    name="THROTTLE_LOGIN_FAILURES_PER_ADDRESS",
)
THROTTLE_REGISTRATIONS_PER_ADDRESS = parse_rate(
    env_str("THROTTLE_REGISTRATIONS_PER_ADDRESS", "20/h"),
    name="THROTTLE_REGISTRATIONS_PER_ADDRESS",
)

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Inventory & Orders <notifications@localhost>")
# Seconds per blocking SMTP operation: a hung server must not hold the worker forever.
EMAIL_TIMEOUT = float(env_str("EMAIL_TIMEOUT", "10"))
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))  # the file backend's folder
# Tries per e-mail; retry n waits EMAIL_RETRY_BASE_SECONDS * 2**(n-1), at most an hour.
EMAIL_MAX_ATTEMPTS = env_int("EMAIL_MAX_ATTEMPTS", 8)
EMAIL_RETRY_BASE_SECONDS = float(env_str("EMAIL_RETRY_BASE_SECONDS", "30"))
# A delivery claimed longer ago than this belonged to a worker that died while sending it.
EMAIL_SENDING_LEASE_SECONDS = float(env_str("EMAIL_SENDING_LEASE_SECONDS", "300"))

if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL are exclusive: set one of them.")
if EMAIL_MAX_ATTEMPTS < 1 or EMAIL_RETRY_BASE_SECONDS < 0:
    raise ImproperlyConfigured("EMAIL_MAX_ATTEMPTS must be >= 1, EMAIL_RETRY_BASE_SECONDS >= 0.")
