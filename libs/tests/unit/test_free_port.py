"""``devstack.system.free_port``: the ports the local runner, tests and benchmark use."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from devstack import system


def test_never_hands_out_a_port_twice_even_when_the_kernel_offers_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    offers = iter([40001, 40001, 40002, 40001, 40003])

    class Socket:
        def __enter__(self) -> Socket:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def bind(self, address: tuple[str, int]) -> None:
            self.port = next(offers)

        def getsockname(self) -> tuple[str, int]:
            return ("127.0.0.1", self.port)

    monkeypatch.setattr(system, "_handed_out", set())
    monkeypatch.setattr(system.socket, "socket", Socket)
    assert [system.free_port(), system.free_port(), system.free_port()] == [40001, 40002, 40003]


def test_leaves_out_excluded_ports_and_gives_bindable_ones() -> None:
    ports = [system.free_port(exclude=frozenset({5432, 5672})) for _ in range(20)]
    assert len(set(ports)) == 20
    assert not {5432, 5672} & set(ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))  # nothing listens there


def test_a_held_port_is_offered_to_nobody_else_but_our_servers_can_listen_on_it() -> None:
    held = system.hold_port()
    port = held.getsockname()[1]
    try:
        offered = set()
        for _ in range(3000):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                offered.add(sock.getsockname()[1])
        assert port not in offered
        with socket.socket() as foreign, pytest.raises(OSError):
            foreign.bind(("127.0.0.1", port))  # a program that does not set SO_REUSEADDR
        for _ in range(2):  # a server started, killed and started again (gunicorn, gateway)
            with socket.socket() as server:
                server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                server.bind(("127.0.0.1", port))
                server.listen()
    finally:
        held.close()


def test_a_restartable_port_lies_below_the_kernels_ephemeral_range(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Outgoing connections take their ports from the ephemeral range: a server restarted on
    a port there may find a client's connection sitting on it."""
    limits = tmp_path / "ip_local_port_range"
    limits.write_text("40000\t50000\n")
    monkeypatch.setattr(system, "EPHEMERAL_RANGE_FILE", limits)
    ports = [system.free_port(restartable=True) for _ in range(20)]
    assert len(set(ports)) == 20
    assert all(40000 - system.RESTARTABLE_SPAN <= port < 40000 for port in ports), ports
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))


def test_a_restartable_port_already_taken_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        offers = iter([busy, 5432, free])
        monkeypatch.setattr(system.random, "randrange", lambda first, last: next(offers))
        port = system.free_port(exclude=frozenset({5432}), restartable=True)
    assert port == free
