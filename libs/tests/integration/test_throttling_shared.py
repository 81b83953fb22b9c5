"""The abuse limits' counts are shared by every process of a service: two real processes
counting against one store (the local default's files, and Redis) grant the limit once
between them, not once each."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

LIBS = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# One process of a service: counts `hits` requests of one caller under a limit of 10 per hour,
# prints which were refused (True) and the mean cost of one count in seconds (over `probes`).
PROCESS = """
import json, sys, time
import django
from django.conf import settings
settings.configure(CACHES={"default": json.loads(sys.argv[1])}, INSTALLED_APPS=[])
django.setup()
from rest_framework.exceptions import Throttled
from service_runtime import throttling
from service_runtime.rates import Rate
limit = throttling.Limit("test", sys.argv[2], Rate(10, 3600))
refused = []
for _ in range(int(sys.argv[3])):
    try:
        throttling.hit(limit)
        refused.append(False)
    except Throttled as exc:
        assert exc.wait and exc.wait <= 3600
        refused.append(True)
probe = throttling.Limit("cost", sys.argv[2], Rate(10**9, 3600))
probes = int(sys.argv[4])
sends = 0
if probes:  # count what goes to Redis: each send is one round trip (its answer is awaited)
    from redis.connection import Connection
    send = Connection.send_packed_command
    def counted(self, *args, **kwargs):
        global sends
        sends += 1
        return send(self, *args, **kwargs)
    throttling.hit(probe)  # the connection is opened (its handshake is no request's cost)
    Connection.send_packed_command = counted
started = time.perf_counter()
for _ in range(probes):
    throttling.hit(probe)
cost = (time.perf_counter() - started) / max(probes, 1)
print(json.dumps({"refused": refused, "cost": cost, "round_trips": sends / max(probes, 1)}))
"""


def _process(
    cache: dict[str, object], caller: str, hits: int, probes: int = 0
) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", PROCESS, json.dumps(cache), caller, str(hits), str(probes)],
        env={**os.environ, "PYTHONPATH": str(LIBS)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return dict(json.loads(result.stdout))


def _redis_answers() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def _file_cache(tmp_path: Path) -> dict[str, object]:
    return {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(tmp_path / "cache"),
    }


def _redis_cache(tmp_path: Path) -> dict[str, object]:
    if not _redis_answers():
        pytest.skip(f"no Redis at {REDIS_URL}")
    return {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": f"test-{uuid.uuid4().hex}",  # nothing shared with another run
    }


@pytest.mark.parametrize("store", [_file_cache, _redis_cache], ids=["files", "redis"])
def test_two_processes_grant_the_limit_once_between_them(store: object, tmp_path: Path) -> None:
    cache = store(tmp_path)  # type: ignore[operator]
    caller = uuid.uuid4().hex
    first = _process(cache, caller, 6)
    second = _process(cache, caller, 6)
    assert first["refused"] == [False] * 6
    assert second["refused"] == [False] * 4 + [True] * 2  # per process, all six would pass


def test_counting_in_redis_is_one_round_trip_of_a_fraction_of_a_millisecond(
    tmp_path: Path,
) -> None:
    """The order placement's cost per request: one pipelined INCR + EXPIRE."""
    cache = _redis_cache(tmp_path)
    started = time.perf_counter()
    result = _process(cache, uuid.uuid4().hex, 1, probes=500)
    assert time.perf_counter() - started < 30
    cost = float(result["cost"])  # type: ignore[arg-type]
    print(f"one count in Redis: {cost * 1e3:.3f} ms")
    assert result["round_trips"] == 1
    assert cost < 0.01  # about 0.2 ms on an idle machine


def test_an_unreachable_cache_lets_requests_through(tmp_path: Path) -> None:
    """A cache outage must not stop sign-ins and orders: the limit is skipped, and logged."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens once the socket is closed
    cache: dict[str, object] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{port}/0",
    }
    result = _process(cache, uuid.uuid4().hex, 12)  # over the limit of 10 if it counted
    assert result["refused"] == [False] * 12
