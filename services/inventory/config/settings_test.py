"""Test settings: the real PostgreSQL and a throwaway key pair for signing tokens."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/inventory")
os.environ.pop("JWT_PUBLIC_KEY", None)  # the key file below must win over a developer's env

from config.settings import *  # noqa: F403
from identity.keys import ensure_keypair
from service_runtime.settings import REPO_ROOT, private_test_database

TEST_KEYS_DIR = REPO_ROOT / "var" / "test-keys"
JWT_PRIVATE_KEY_FILE = str(TEST_KEYS_DIR / "jwt_private.pem")
JWT_PUBLIC_KEY_FILE = str(TEST_KEYS_DIR / "jwt_public.pem")
ensure_keypair(TEST_KEYS_DIR / "jwt_private.pem", TEST_KEYS_DIR / "jwt_public.pem")

MESSAGING_PREFIX = "test."

# Events stay in the outbox at commit: no test reaches a broker unless it runs a relay.
MESSAGING_PUBLISH_AFTER_COMMIT = False

DATABASES = {"default": private_test_database(globals()["DATABASES"]["default"])}
