"""The load generator's HTTP side: an asyncio client speaking the public APIs.

Every order is placed as a customer would: a bearer token from the user-notification service,
a fresh ``Idempotency-Key`` per order, and the same key again when a request has to be retried
(connection error or 5xx), so a retry can never place an order twice.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

RETRIES = 3
REPLICA_WAIT_SECONDS = 15.0  # a 400 for a product the orders service does not know yet


@dataclass(frozen=True)
class Customer:
    username: str
    token: str


@dataclass
class PostResult:
    order_id: str | None
    status: int  # the last HTTP status; 0 when no answer came
    started: float  # time.monotonic() just before the first attempt
    answered: float
    attempts: int = 1
    error: str = ""
    sent: float = 0.0  # time.monotonic() when the first attempt actually began

    @property
    def accepted(self) -> bool:
        """202 (placed), or 200 (an earlier attempt with the same key placed it)."""
        return self.order_id is not None and self.status in (200, 202)


class ApiError(RuntimeError):
    pass


class Client:
    def __init__(self, urls: dict[str, str], *, connections: int = 512) -> None:
        self.inventory = urls["inventory"]
        self.orders = urls["orders"]
        self.users = urls["user-notification"]
        self._connections = connections
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        # gunicorn's sync workers close every connection after one response, so the connector
        # mostly opens new ones; the limit bounds how many wait in the servers' listen backlog.
        connector = aiohttp.TCPConnector(limit=self._connections, force_close=True)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=120)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    async def _json(
        self, method: str, url: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        assert self.session is not None
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body) if body is not None else None
        async with self.session.request(method, url, data=data, headers=headers) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text) if text else None
            except ValueError:
                return response.status, text

    async def timed_get(self, url: str, token: str | None = None) -> tuple[int, float, Any]:
        """One GET, not retried: its status, the seconds until its whole answer, the answer."""
        began = time.monotonic()
        try:
            status, payload = await self._json("GET", url, None, token)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return 0, time.monotonic() - began, repr(exc)
        return status, time.monotonic() - began, payload

    async def expect(
        self, method: str, url: str, body: Any = None, token: str | None = None, ok: int = 200
    ) -> Any:
        """One API call that must answer ``ok`` (retried on connection errors)."""
        for attempt in range(RETRIES + 1):
            try:
                status, payload = await self._json(method, url, body, token)
            except (aiohttp.ClientError, TimeoutError) as exc:
                if attempt == RETRIES:
                    raise ApiError(f"{method} {url}: {exc!r}") from exc
                await asyncio.sleep(0.5 * (attempt + 1))
                continue
            if status == ok:
                return payload
            raise ApiError(f"{method} {url} answered {status}: {str(payload)[:500]}")
        raise AssertionError("unreachable")

    # accounts
    async def token(self, username: str, password: str) -> str:
        payload = await self.expect(
            "POST",
            f"{self.users}/api/users/token/",
            {"username": username, "password": password},
        )
        return str(payload["access"])

    async def register(self, username: str) -> Customer:
        password = f"pw-{uuid.uuid4().hex}"
        await self.expect(
            "POST",
            f"{self.users}/api/users/register/",
            {"username": username, "email": f"{username}@example.test", "password": password},
            ok=201,
        )
        return Customer(username, await self.token(username, password))

    # catalogue (staff)
    async def create_product(self, staff: str, sku: str, price: str = "10.00") -> int:
        payload = await self.expect(
            "POST",
            f"{self.inventory}/api/products/",
            {"sku": sku, "name": f"Bench product {sku}", "price": price},
            staff,
            ok=201,
        )
        return int(payload["id"])

    async def adjust_stock(self, staff: str, product_id: int, delta: int) -> None:
        url = f"{self.inventory}/api/products/{product_id}/stock-adjustments/"
        assert self.session is not None
        for attempt in range(RETRIES + 1):
            try:
                status, payload = await self._json(
                    "POST", url, {"delta": delta, "reason": "bench stock"}, staff
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                # not idempotent: a lost answer may hide an applied adjustment, so stop here
                raise ApiError(f"POST {url}: {exc!r}") from exc
            if status in (200, 201):
                return
            if attempt == RETRIES:
                raise ApiError(f"POST {url} answered {status}: {str(payload)[:500]}")

    # orders
    async def place_order(
        self, customer: Customer, lines: list[dict[str, int]], started: float | None = None
    ) -> PostResult:
        """POST one order; ``started`` (monotonic) defaults to now: the latency's origin."""
        assert self.session is not None
        key = str(uuid.uuid4())
        url = f"{self.orders}/api/orders/"
        headers = {
            "Authorization": f"Bearer {customer.token}",
            "Idempotency-Key": key,
            "Content-Type": "application/json",
        }
        data = json.dumps({"lines": lines})
        began = time.monotonic()
        result = PostResult(None, 0, began if started is None else started, began, 0, sent=began)
        replica_deadline = began + REPLICA_WAIT_SECONDS
        failures = 0
        while True:
            result.attempts += 1
            try:
                async with self.session.post(url, data=data, headers=headers) as response:
                    result.status = response.status
                    body = await response.read()
                    result.answered = time.monotonic()
                    if response.status in (200, 202):
                        result.order_id = str(json.loads(body)["id"])
                        return result
                    result.error = body[:300].decode(errors="replace")
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
                result.status, result.error = 0, repr(exc)[:300]
                result.answered = time.monotonic()
            if result.status == 400 and time.monotonic() < replica_deadline:
                await asyncio.sleep(0.1)  # the orders service's replica has not seen it yet
                continue
            if result.status == 0 or result.status >= 500:
                failures += 1
                if failures <= RETRIES:
                    await asyncio.sleep(0.2 * failures)
                    continue
            return result
