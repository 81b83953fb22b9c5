"""Settings for testing the shared libraries on their own, against real PostgreSQL."""

import os

from service_runtime.settings import build, private_test_database

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/libs")

_base = build("libtest", apps=[], urlconf="tests.urls")
globals().update(_base)
MESSAGING_HANDLERS: str | None = None
DATABASES = {"default": private_test_database(_base["DATABASES"]["default"])}
