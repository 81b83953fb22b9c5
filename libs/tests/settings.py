"""Settings for testing the shared libraries on their own, against real PostgreSQL."""

import os

from service_runtime.settings import build

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/libs")

globals().update(build("libtest", apps=[], urlconf="tests.urls"))
MESSAGING_HANDLERS: str | None = None
