"""Django's PostgreSQL backend, with ``CONN_HEALTH_CHECKS`` answered without a round trip when
the connection shows nothing wrong.

With ``CONN_HEALTH_CHECKS``, Django checks a persistent connection before its first query in
each request: a ``SELECT 1``, a round trip to the server and a transaction of its own, on every
request. An idle connection has nothing to read, though, unless the server said something
unasked: a session the server ended (a restart, ``pg_terminate_backend``, a crash) leaves an
error message or the end of the stream on the socket. So the socket is polled first, without
waiting: nothing to read and a connection psycopg holds open and idle is usable; anything else
(something to read, a hang-up, a transaction left open) falls back to Django's ``SELECT 1``, which
reads it and decides.

What a poll cannot see is a server that went silent (a network cut, a machine gone): the
``SELECT 1`` would not have answered either, and the first statement fails instead, as it does
for every connection error between two checks.
"""

from __future__ import annotations

import select
from typing import Any

from django.db.backends.postgresql import base
from psycopg import pq


def quiet(fileno: int) -> bool:
    """Whether nothing at all waits on the socket: no data, no hang-up, no error."""
    poller = select.poll()
    poller.register(fileno, select.POLLIN | select.POLLPRI)
    return not poller.poll(0)  # POLLERR, POLLHUP and POLLNVAL are reported unasked


# Prepared statements a connection keeps (psycopg's default is 100): the few that
# service_runtime.statements prepares, each planned again as the process ages; past this many,
# the least recently used is deallocated.
PREPARED_MAX = 16


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = super().get_new_connection(conn_params)
        connection.prepared_max = PREPARED_MAX
        return connection

    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None:
            return False
        if (
            not connection.closed
            and connection.info.transaction_status == pq.TransactionStatus.IDLE
            and quiet(connection.fileno())
        ):
            return True
        return bool(super().is_usable())
