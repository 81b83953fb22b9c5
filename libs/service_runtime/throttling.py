"""Abuse limits: how many times a caller may do something per window of time.

Each limit is a :class:`Rate` read from a setting (``"10/15m"``: ten per fifteen minutes;
empty or ``off``: no limit) and counted per identity (a username, a client address, a user
id) in fixed windows, in the cache every process of the service shares (``CACHES``, see
``service_runtime.settings.caches``): Redis in production, files under ``var/`` on a laptop.
A count held in one process's memory would let each of a server's workers grant the whole
limit.

Over the limit, the request is refused with DRF's ``Throttled``: a 429 in the API's error
shape (``code`` ``throttled``) with ``Retry-After``, the seconds until the window ends.

Cost: with Redis, counting is one round trip (``INCR`` and ``EXPIRE`` in one pipeline) and a
check without counting one ``MGET``. The other backends count with a read and a write that
are not atomic: concurrent requests may each be counted once less (the local default only).

A cache that cannot be reached lets the request through, with a warning in the log: the limits
protect the service, and a cache outage must not stop sign-ins and order placement. Each such
request waits at most the cache's socket timeouts (1 s for Redis, ``settings.caches``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.redis import RedisCache
from django.http import HttpRequest
from rest_framework.exceptions import Throttled

from service_runtime.rates import Rate

CACHE_ALIAS = "default"
logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Limit:
    """One limit applied to one identity: ``scope`` names what is limited."""

    scope: str
    identity: str
    rate: Rate | None

    def key(self, now: float) -> str:
        assert self.rate is not None
        # Hashed: a username or an address is any text, and no cache key holds it in clear.
        digest = hashlib.sha256(self.identity.encode()).hexdigest()[:32]
        return f"throttle:{self.scope}:{self.rate.seconds}:{digest}:{self.rate.window(now)[0]}"


def hit(*limits: Limit) -> None:
    """Count one more request under each limit, refused (429) when that is over one of them."""
    now = time.time()
    active = [limit for limit in limits if limit.rate is not None]
    counts = _unless_unreachable(lambda: _increment(active, now)) if active else None
    if counts is not None:
        _refuse_over(active, counts, now, slack=0)


def check(*limits: Limit) -> None:
    """Refuse (429) when a limit's count has already reached it, without counting: for limits
    that count failures only (:func:`count` after the request failed)."""
    now = time.time()
    active = [limit for limit in limits if limit.rate is not None]
    if not active:
        return
    keys = [limit.key(now) for limit in active]
    found = _unless_unreachable(lambda: caches[CACHE_ALIAS].get_many(keys))
    if found is not None:
        counts = [int(found.get(key) or 0) for key in keys]
        _refuse_over(active, counts, now, slack=1)  # the next one would be over


def count(*limits: Limit) -> None:
    """Count one more under each limit, refusing nothing (this request is answered anyway)."""
    active = [limit for limit in limits if limit.rate is not None]
    if active:
        now = time.time()
        _unless_unreachable(lambda: _increment(active, now))


def _unless_unreachable(operation: Callable[[], T]) -> T | None:
    """The operation's result; None when the cache cannot be reached (logged)."""
    try:
        return operation()
    except Exception as exc:  # the backend's own errors: redis.RedisError, OSError...
        logger.warning("abuse limits not applied: the cache is unreachable (%s)", exc)
        return None


def client_address(request: HttpRequest) -> str:
    """The caller's address: ``REMOTE_ADDR``, or, behind ``THROTTLE_PROXY_COUNT`` proxies that
    each append to ``X-Forwarded-For``, the address the outermost of them saw. Trusting more
    proxies than there are would let a caller choose its own address."""
    proxies = int(getattr(settings, "THROTTLE_PROXY_COUNT", 0))
    remote = str(request.META.get("REMOTE_ADDR") or "")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if proxies <= 0 or not forwarded:
        return remote
    hops = [hop.strip() for hop in str(forwarded).split(",") if hop.strip()]
    return hops[-min(proxies, len(hops))] if hops else remote


def _refuse_over(limits: Sequence[Limit], counts: Sequence[int], now: float, *, slack: int) -> None:
    waits = [
        limit.rate.window(now)[1]
        for limit, spent in zip(limits, counts, strict=True)
        if limit.rate is not None and spent > limit.rate.limit - slack
    ]
    if waits:
        raise Throttled(wait=max(waits))


def _increment(limits: Sequence[Limit], now: float) -> list[int]:
    """Each limit's count after adding one; its key lives until its window ends."""
    cache = caches[CACHE_ALIAS]
    entries = [(limit.key(now), limit.rate.window(now)[1] + 1) for limit in limits if limit.rate]
    if isinstance(cache, RedisCache):
        return _increment_redis(cache, entries)
    return [_increment_other(cache, key, ttl) for key, ttl in entries]


def _increment_redis(cache: RedisCache, entries: list[tuple[str, int]]) -> list[int]:
    # Django's incr() asks EXISTS first, a second round trip: the client's pipeline sends
    # every INCR and EXPIRE at once. Django reads a plain integer value back as an int.
    keys = [(cache.make_and_validate_key(key), ttl) for key, ttl in entries]
    pipeline = cache._cache.get_client(keys[0][0], write=True).pipeline(transaction=False)
    for key, ttl in keys:
        pipeline.incr(key)
        pipeline.expire(key, ttl)
    results = pipeline.execute()
    return [int(value) for value in results[::2]]


def _increment_other(cache: BaseCache, key: str, ttl: int) -> int:
    if cache.add(key, 1, ttl):
        return 1
    value = int(cache.get(key) or 0) + 1
    cache.set(key, value, ttl)  # not incr(): it would keep the cache's default timeout
    return value
