"""Writes that are one statement and so one transaction of their own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import connection, transaction


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """Around writes of one statement each: nothing in autocommit (each statement is its own
    transaction, without ``BEGIN`` and ``COMMIT`` round trips); inside a caller's transaction a
    savepoint of it, so that an error in them leaves that transaction usable."""
    if connection.in_atomic_block:
        with transaction.atomic():
            yield
    else:
        yield
