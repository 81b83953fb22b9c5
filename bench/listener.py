"""The orders service's outcome events, as they happen: when each order became final.

A child process consumes a private, exclusive, auto-delete queue bound to the orders
exchange for the final outcomes and stamps each message with ``time.monotonic()`` the moment
it arrives (CLOCK_MONOTONIC is one clock for every process on the machine, so it compares
with the load generator's stamps). A separate process keeps the stamps honest: the load
generator's event loop and the GIL cannot delay them. Stamps come back over a pipe and wake
whoever waits for that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import time
from collections.abc import Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from typing import Any

import pika

from messaging.topology import Names

OUTCOME_EVENTS = ("order.confirmed", "order.rejected", "order.cancelled")
STATUS_OF_EVENT = {
    "order.confirmed": "CONFIRMED",
    "order.rejected": "REJECTED",
    "order.cancelled": "CANCELLED",
}


def _listen(
    broker_url: str, exchange: str, pipe: Connection, ready: EventType, stop: EventType
) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
    for event_type in OUTCOME_EVENTS:
        channel.queue_bind(queue, exchange, routing_key=event_type)

    def on_message(_channel: Any, _method: Any, _properties: Any, body: bytes) -> None:
        arrived = time.monotonic()
        try:
            message = json.loads(body)
            pipe.send((message["data"]["order_id"], message["type"], arrived))
        except (ValueError, KeyError, TypeError):
            pipe.send(("", "malformed", arrived))

    channel.basic_consume(queue, on_message, auto_ack=True)
    ready.set()
    try:
        while not stop.is_set():
            connection.process_data_events(time_limit=0.2)
    finally:
        with contextlib.suppress(Exception):
            connection.close()
        pipe.close()


@dataclass(frozen=True)
class Outcome:
    status: str
    at: float  # time.monotonic() when the event reached the listener


class OutcomeListener:
    """Start before the load, read ``outcomes`` (order id → first outcome) during and after."""

    def __init__(self, broker_url: str, prefix: str) -> None:
        self.broker_url = broker_url
        self.exchange = Names(prefix).exchange("orders")
        self.outcomes: dict[str, Outcome] = {}
        self.duplicates = 0
        self.malformed = 0
        self._waiters: dict[str, asyncio.Future[Outcome]] = {}
        self._context = multiprocessing.get_context("spawn")
        self._stop = self._context.Event()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._receiver: Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, timeout: float = 30.0) -> None:
        receiver, sender = self._context.Pipe(duplex=False)
        ready = self._context.Event()
        self._process = self._context.Process(
            target=_listen,
            args=(self.broker_url, self.exchange, sender, ready, self._stop),
            name="bench-outcome-listener",
            daemon=True,
        )
        self._process.start()
        sender.close()
        self._receiver = receiver
        if not ready.wait(timeout):
            self.stop()
            raise RuntimeError(f"the outcome listener did not bind to {self.exchange} in time")

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver outcomes inside ``loop`` from now on (call from the loop's thread)."""
        assert self._receiver is not None
        self._loop = loop
        loop.add_reader(self._receiver.fileno(), self._drain)

    def detach(self) -> None:
        if self._loop is not None and self._receiver is not None:
            self._loop.remove_reader(self._receiver.fileno())
        self._drain()
        self._loop = None
        self._waiters.clear()

    def _drain(self) -> None:
        receiver = self._receiver
        if receiver is None:
            return
        try:
            while receiver.poll():
                order_id, event_type, arrived = receiver.recv()
                self._record(order_id, event_type, arrived)
        except (EOFError, OSError):
            if self._loop is not None:
                self._loop.remove_reader(receiver.fileno())

    def _record(self, order_id: str, event_type: str, arrived: float) -> None:
        if event_type == "malformed":
            self.malformed += 1
            return
        if order_id in self.outcomes:
            self.duplicates += 1  # a republished event (the relay's at-least-once): first wins
            return
        outcome = Outcome(STATUS_OF_EVENT[event_type], arrived)
        self.outcomes[order_id] = outcome
        waiter = self._waiters.pop(order_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)

    async def wait(self, order_id: str, timeout: float) -> Outcome | None:
        """The order's outcome, or None if it does not arrive within ``timeout`` seconds."""
        outcome = self.outcomes.get(order_id)
        if outcome is not None:
            return outcome
        assert self._loop is not None, "attach() the listener to the running loop first"
        future = self._waiters.get(order_id)
        if future is None:
            future = self._loop.create_future()
            self._waiters[order_id] = future
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return None

    def missing(self, order_ids: Iterable[str]) -> list[str]:
        return [order_id for order_id in order_ids if order_id not in self.outcomes]

    async def wait_all(
        self, order_ids: Iterable[str], stall: float, limit: float = 3600.0, poll: float = 0.05
    ) -> list[str]:
        """Wait until every order has an outcome; return those still missing when giving up.

        Gives up when no new outcome arrived for ``stall`` seconds (the system is stuck, not
        slow), or after ``limit`` seconds in all.
        """
        pending = self.missing(order_ids)
        began = last_progress = time.monotonic()
        while pending:
            now = time.monotonic()
            if now - last_progress > stall or now - began > limit:
                break
            await asyncio.sleep(poll)
            still = self.missing(pending)
            if len(still) < len(pending):
                last_progress = time.monotonic()
            pending = still
        return pending

    def stop(self) -> None:
        self._stop.set()
        if self._process is not None:
            self._process.join(10)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(5)
        if self._receiver is not None:
            self._drain()
            self._receiver.close()
            self._receiver = None
