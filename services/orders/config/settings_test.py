"""Settings for the test suite: real PostgreSQL and a throw-away RS256 key pair."""

import os
from pathlib import Path

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orders")

from config.settings import *  # noqa: F403
from identity.keys import ensure_keypair
from service_runtime.settings import REPO_ROOT, private_test_database

TEST_KEYS_DIR = REPO_ROOT / "var" / "test-keys"
JWT_PRIVATE_KEY_FILE = str(TEST_KEYS_DIR / "jwt_private.pem")
JWT_PUBLIC_KEY_FILE = str(TEST_KEYS_DIR / "jwt_public.pem")
ensure_keypair(Path(JWT_PRIVATE_KEY_FILE), Path(JWT_PUBLIC_KEY_FILE))

ORDER_PENDING_DEADLINE_SECONDS = 900

# One process, one test at a time: the cache in memory; the abuse limits off, except where a test
# sets one (a suite places far more than a person would).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
THROTTLE_ORDERS_PER_USER = None

# Events stay in the outbox at commit: no test reaches a broker unless it runs a relay.
MESSAGING_PUBLISH_AFTER_COMMIT = False

DATABASES = {"default": private_test_database(globals()["DATABASES"]["default"])}
