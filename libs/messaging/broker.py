"""Opening broker connections, and the back-off used by every reconnect loop."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator

import pika
from pika.adapters.blocking_connection import BlockingConnection
from pika.adapters.utils.connection_workflow import AMQPConnectorException
from pika.exceptions import AMQPError

from messaging.config import MessagingConfig

logger = logging.getLogger("messaging.broker")

# Errors after which a worker drops its broker connection and opens a new one (pika raises the
# connector's own, not an AMQPError, for a broker that accepts TCP but never completes AMQP).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (AMQPError, AMQPConnectorException, OSError)


def connect(
    config: MessagingConfig, *, name: str, timeout: float | None = None
) -> BlockingConnection:
    """A connection for one worker thread; ``timeout`` also bounds the whole handshake and a
    broker that blocks publishers (a web request must not wait long for it)."""
    params = pika.URLParameters(config.broker_url)
    params.heartbeat = config.heartbeat
    params.blocked_connection_timeout = timeout or 60
    params.connection_attempts = 1
    params.socket_timeout = timeout or 5
    if timeout is not None:
        params.stack_timeout = timeout
    # Named so an operator (or a test) can tell this worker's connection apart from others.
    params.client_properties = {"connection_name": f"{config.prefix}{config.service}:{name}"}
    return pika.BlockingConnection(params)


def close_quietly(broker: BlockingConnection | None) -> None:
    """Close ``broker`` if it is open; one that is already broken has nothing left to release."""
    try:
        if broker is not None and broker.is_open:
            broker.close()
    except Exception:
        logger.debug("ignored error while closing", exc_info=True)


def backoff_delays(base: float = 0.2, cap: float = 10.0) -> Iterator[float]:
    """Exponential back-off with jitter: 0.2 s, 0.4 s, … up to ``cap``, forever."""
    delay = base
    while True:
        yield delay * random.uniform(0.5, 1.0)
        delay = min(delay * 2, cap)


def broker_problem(url: str, timeout: float = 3.0) -> str | None:
    """Why the broker at ``url`` cannot be reached, or None when it can."""
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = timeout
    params.stack_timeout = timeout  # also bounds a broker that accepts TCP but never speaks AMQP
    try:
        pika.BlockingConnection(params).close()
    except Exception as exc:  # any failure is reported, never raised
        return f"{type(exc).__name__}: {exc}".strip(": ")
    return None


def sleep_quietly(seconds: float) -> None:
    time.sleep(seconds)
