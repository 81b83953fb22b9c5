"""Settings for this service's tests: real PostgreSQL, a key pair of their own, fast hashing."""

import os

from identity.keys import ensure_keypair
from service_runtime.settings import REPO_ROOT, private_test_database

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/user_notification")

TEST_KEYS_DIR = REPO_ROOT / "var" / "test-keys" / "user-notification"
TEST_PRIVATE_KEY_FILE = TEST_KEYS_DIR / "jwt_private.pem"
TEST_PUBLIC_KEY_FILE = TEST_KEYS_DIR / "jwt_public.pem"
ensure_keypair(TEST_PRIVATE_KEY_FILE, TEST_PUBLIC_KEY_FILE)
os.environ["JWT_PRIVATE_KEY_FILE"] = str(TEST_PRIVATE_KEY_FILE)
os.environ["JWT_PUBLIC_KEY_FILE"] = str(TEST_PUBLIC_KEY_FILE)
# PEM text in the environment would win over the files: the tests must use their own pair.
os.environ.pop("JWT_PRIVATE_KEY", None)
os.environ.pop("JWT_PUBLIC_KEY", None)

from config.settings import *  # noqa: E402, F403

# Hashing strength is not under test; the default hasher costs half a second per password.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# One process, one test at a time: the cache in memory; the abuse limits off, except where a test
# sets one (a suite registers far more than a person would).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
THROTTLE_LOGIN_FAILURES_PER_USERNAME = None
THROTTLE_LOGIN_FAILURES_PER_ADDRESS = None
THROTTLE_REGISTRATIONS_PER_ADDRESS = None

# Events stay in the outbox at commit: no test reaches a broker unless it runs a relay.
MESSAGING_PUBLISH_AFTER_COMMIT = False

# Through globals(): mypy cannot type a name that the star import brings and this line rebinds.
DATABASES = {"default": private_test_database(globals()["DATABASES"]["default"])}
