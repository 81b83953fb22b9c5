"""The socket poll behind the backend's health check (no database needed)."""

from __future__ import annotations

import socket

from service_runtime.postgresql.base import quiet


def test_a_socket_with_nothing_to_read_is_quiet() -> None:
    mine, theirs = socket.socketpair()
    with mine, theirs:
        assert quiet(mine.fileno())


def test_a_socket_with_something_to_read_is_not() -> None:
    mine, theirs = socket.socketpair()
    with mine, theirs:
        theirs.sendall(b"E")
        assert not quiet(mine.fileno())


def test_a_socket_whose_peer_hung_up_is_not() -> None:
    mine, theirs = socket.socketpair()
    with mine:
        theirs.close()
        assert not quiet(mine.fileno())
