"""Waking a worker on commit: a dedicated LISTEN connection beside Django's own."""

from __future__ import annotations

from typing import Any

import psycopg
from django.db import connection


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
