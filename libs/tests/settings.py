"""Settings for testing the shared libraries on their own, against real PostgreSQL."""

import os

from service_runtime.settings import build, private_test_database

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/libs")

_base = build("libtest", apps=[], urlconf="tests.urls")
globals().update(_base)
MESSAGING_HANDLERS: str | None = None
# Events stay in the outbox at commit (the tests of publishing after commit turn it on), and a
# relay sends them at once.
MESSAGING_PUBLISH_AFTER_COMMIT = False
MESSAGING_RELAY_GRACE_SECONDS = 0.0
DATABASES = {"default": private_test_database(_base["DATABASES"]["default"])}
