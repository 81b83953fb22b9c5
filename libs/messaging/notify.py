"""Waking a worker on commit: a dedicated LISTEN connection beside Django's own."""

from __future__ import annotations

from typing import Any

import psycopg
from django.db import connection, transaction


def listen(channel: str) -> psycopg.Connection[Any] | None:
    """An autocommit connection LISTENing on ``channel``; None unless the database is PostgreSQL."""
    if connection.vendor != "postgresql":
        return None
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    listener = psycopg.connect(**params, autocommit=True)
    listener.execute(f"LISTEN {channel}")
    return listener


def drain(listener: psycopg.Connection[Any] | None) -> None:
    """Forget notifications already received: the caller is about to look for work anyway."""
    if listener is not None:
        for _ in listener.notifies(timeout=0):
            pass


# Once per transaction: writers wake a worker with one NOTIFY however many rows they write.


class _Notified:
    """An on-commit callback that does nothing: its presence marks that ``channel`` was sent."""

    def __init__(self, channel: str) -> None:
        self.channel = channel

    def __call__(self) -> None:
        return None


def notified_in_this_transaction(channel: str) -> bool:
    """Whether the current transaction already sent a ``NOTIFY`` on ``channel``.

    Django drops the on-commit callbacks of a rolled-back transaction or savepoint, so the mark
    goes exactly when the ``NOTIFY`` it stands for is rolled back with it.
    """
    return any(
        isinstance(entry[1], _Notified) and entry[1].channel == channel
        for entry in connection.run_on_commit
    )


def mark_notified(channel: str) -> None:
    """Record that the current transaction has just sent a ``NOTIFY`` on ``channel`` (for
    statements that send it themselves, e.g. with ``pg_notify``). Outside a transaction the
    statement has committed already, and nothing is recorded."""
    transaction.on_commit(_Notified(channel))


def notify_once(channel: str) -> None:
    """Wake ``channel``'s listeners when, and only if, the current transaction commits: one
    ``NOTIFY`` per transaction (the listener then reads every row), on PostgreSQL only."""
    if connection.vendor == "postgresql" and not notified_in_this_transaction(channel):
        with connection.cursor() as cursor:
            cursor.execute(f"NOTIFY {channel}")
        mark_notified(channel)
