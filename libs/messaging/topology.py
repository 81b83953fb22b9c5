"""Who publishes what and who listens: the broker layout, declared in one place.

Each publishing service owns one durable direct exchange, ``<prefix><service>.events``; each
consuming service owns one durable queue, ``<prefix><service>``, bound by event type, plus its
retry queues (one per back-off delay, dead-lettering back to the queue) and a dead-letter
queue, ``<prefix><service>.dlq``. A prefix keeps test runs apart from a running system.

Retry and dead-letter copies travel through two more exchanges of the consuming service,
``<prefix><service>.retry`` (to its retry queues, and from them back to its queue) and
``<prefix><service>.dead`` (to its dead-letter queue), each routing by queue name. Nothing goes
through the default exchange, so a service's broker account needs write access only to its own
names (``deploy/rabbitmq/generate_definitions.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker

logger = logging.getLogger(__name__)

PRECONDITION_FAILED = 406  # a queue already declared with other arguments

# Events each service publishes (its exchange carries exactly these routing keys).
PUBLISHES: dict[str, tuple[str, ...]] = {
    "inventory": (
        "stock.reserved",
        "stock.rejected",
        "stock.released",
        "stock.low",
        "stock.backordered",
        "product.upserted",
    ),
    "orders": (
        "order.created",
        "order.confirmed",
        "order.rejected",
        "order.cancelled",
        "order.shipped",
        "order.backordered",
        "return.requested",
        "return.received",
        "return.refunded",
    ),
    "user-notification": ("user.registered",),
}

# Events each service consumes.
CONSUMES: dict[str, tuple[str, ...]] = {
    "inventory": ("order.created", "order.cancelled", "order.shipped", "return.received"),
    "orders": (
        "stock.reserved",
        "stock.rejected",
        "stock.released",
        "stock.backordered",
        "product.upserted",
    ),
    "user-notification": (
        "order.confirmed",
        "order.rejected",
        "order.cancelled",
        "order.shipped",
        "order.backordered",
        "return.requested",
        "return.received",
        "return.refunded",
        "stock.low",
        "user.registered",
    ),
}


# Bindings an earlier release declared that this one no longer wants. Bindings outlive the
# workers that declared them, so a consumer's declaration removes these: an upgraded queue stops
# filling with events nothing reads any more.
RETIRED: dict[str, tuple[str, ...]] = {
    # Notified on the outcome only since the "received" notice went (docs/events.md).
    "user-notification": ("order.created",),
}


def publisher_of(event_type: str) -> str:
    for service, events in PUBLISHES.items():
        if event_type in events:
            return service
    raise KeyError(f"no service publishes {event_type!r}")


@dataclass(frozen=True)
class Names:
    prefix: str = ""

    def exchange(self, service: str) -> str:
        return f"{self.prefix}{service}.events"

    def queue(self, service: str) -> str:
        return f"{self.prefix}{service}"

    def dead_letter_queue(self, service: str) -> str:
        return f"{self.queue(service)}.dlq"

    def retry_queue(self, service: str, delay_ms: int) -> str:
        return f"{self.queue(service)}.retry.{delay_ms}ms"

    def retry_exchange(self, service: str) -> str:
        """Routes by queue name to the service's retry queues and back to its queue."""
        return f"{self.prefix}{service}.retry"

    def dead_letter_exchange(self, service: str) -> str:
        """Routes by queue name to the service's dead-letter queue."""
        return f"{self.prefix}{service}.dead"


def declare_exchanges(channel: BlockingChannel, names: Names) -> None:
    for service in PUBLISHES:
        channel.exchange_declare(names.exchange(service), exchange_type="direct", durable=True)


def declare_own_exchange(channel: BlockingChannel, names: Names, service: str) -> None:
    channel.exchange_declare(names.exchange(service), exchange_type="direct", durable=True)


def declare_consumer_queues(
    channel: BlockingChannel, names: Names, service: str, retry_delays_ms: tuple[int, ...]
) -> BlockingChannel:
    """Declare a service's queue with its bindings, its retry and dead-letter exchanges, retry
    queues and dead-letter queue; return the channel to go on with (a new one when a retry
    queue of an earlier release had to be accepted as it is, see :func:`_declare_retry_queue`).
    """
    queue, dlq = names.queue(service), names.dead_letter_queue(service)
    retry, dead = names.retry_exchange(service), names.dead_letter_exchange(service)
    channel.queue_declare(queue, durable=True)
    for event_type in CONSUMES[service]:
        channel.queue_bind(queue, names.exchange(publisher_of(event_type)), event_type)
    for event_type in RETIRED.get(service, ()):  # succeeds when there is no such binding
        channel.queue_unbind(
            queue, names.exchange(publisher_of(event_type)), routing_key=event_type
        )
    channel.exchange_declare(retry, exchange_type="direct", durable=True)
    channel.exchange_declare(dead, exchange_type="direct", durable=True)
    channel.queue_bind(queue, retry, queue)  # the way back from a retry queue (and a replay)
    for delay in retry_delays_ms:
        retry_queue = names.retry_queue(service, delay)
        channel = _declare_retry_queue(
            channel,
            retry_queue,
            {
                "x-message-ttl": delay,
                "x-dead-letter-exchange": retry,
                "x-dead-letter-routing-key": queue,
            },
        )
        channel.queue_bind(retry_queue, retry, retry_queue)
    channel.queue_declare(dlq, durable=True)
    channel.queue_bind(dlq, dead, dlq)
    return channel


def _declare_retry_queue(
    channel: BlockingChannel, name: str, arguments: dict[str, object]
) -> BlockingChannel:
    """Declare a retry queue, or accept the one an earlier release declared.

    Releases before the retry exchange declared retry queues dead-lettering through the default
    exchange; the broker refuses a declaration with other arguments (and closes the channel), so
    such a queue is kept as it is: it still sends its messages back to the service's queue (the
    broker's own dead-lettering needs no permission). docs/operations.md says how to replace it.
    """
    try:
        channel.queue_declare(name, durable=True, arguments=arguments)
    except ChannelClosedByBroker as refusal:
        if refusal.reply_code != PRECONDITION_FAILED:
            raise
        logger.warning("keeping retry queue %s of an earlier release: %s", name, refusal)
        channel = channel.connection.channel()
        channel.queue_declare(name, durable=True, passive=True)
    return channel


def declare_all(
    channel: BlockingChannel, names: Names, retry_delays_ms: tuple[int, ...]
) -> BlockingChannel:
    """Declare the whole system's layout, so no event is ever published before its queue;
    return the channel to go on with (see :func:`declare_consumer_queues`)."""
    declare_exchanges(channel, names)
    for service in CONSUMES:
        channel = declare_consumer_queues(channel, names, service, retry_delays_ms)
    return channel


def delete_all(channel: BlockingChannel, names: Names, retry_delays_ms: tuple[int, ...]) -> None:
    """Delete what :func:`declare_all` declared (test and benchmark runs clean up with it)."""
    for service in CONSUMES:
        channel.queue_delete(names.queue(service))
        channel.queue_delete(names.dead_letter_queue(service))
        for delay in retry_delays_ms:
            channel.queue_delete(names.retry_queue(service, delay))
        channel.exchange_delete(names.retry_exchange(service))
        channel.exchange_delete(names.dead_letter_exchange(service))
    for service in PUBLISHES:
        channel.exchange_delete(names.exchange(service))
