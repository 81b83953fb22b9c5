"""Who publishes what and who listens: the broker layout, declared in one place.

Each publishing service owns one durable direct exchange, ``<prefix><service>.events``; each
consuming service owns one durable queue, ``<prefix><service>``, bound by event type, plus its
retry queues (one per back-off delay, dead-lettering back to the queue) and a dead-letter
queue, ``<prefix><service>.dlq``. A prefix keeps test runs apart from a running system.
"""

from __future__ import annotations

from dataclasses import dataclass

from pika.adapters.blocking_connection import BlockingChannel

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
        "order.created",
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


def declare_exchanges(channel: BlockingChannel, names: Names) -> None:
    for service in PUBLISHES:
        channel.exchange_declare(names.exchange(service), exchange_type="direct", durable=True)


def declare_own_exchange(channel: BlockingChannel, names: Names, service: str) -> None:
    channel.exchange_declare(names.exchange(service), exchange_type="direct", durable=True)


def declare_consumer_queues(
    channel: BlockingChannel, names: Names, service: str, retry_delays_ms: tuple[int, ...]
) -> None:
    """Declare a service's queue with its bindings, retry queues and dead-letter queue."""
    queue = names.queue(service)
    channel.queue_declare(queue, durable=True)
    for event_type in CONSUMES[service]:
        channel.queue_bind(queue, names.exchange(publisher_of(event_type)), event_type)
    for delay in retry_delays_ms:
        channel.queue_declare(
            names.retry_queue(service, delay),
            durable=True,
            arguments={
                "x-message-ttl": delay,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": queue,
            },
        )
    channel.queue_declare(names.dead_letter_queue(service), durable=True)


def declare_all(channel: BlockingChannel, names: Names, retry_delays_ms: tuple[int, ...]) -> None:
    """Declare the whole system's layout, so no event is ever published before its queue."""
    declare_exchanges(channel, names)
    for service in CONSUMES:
        declare_consumer_queues(channel, names, service, retry_delays_ms)


def delete_all(channel: BlockingChannel, names: Names, retry_delays_ms: tuple[int, ...]) -> None:
    """Delete what :func:`declare_all` declared (test and benchmark runs clean up with it)."""
    for service in CONSUMES:
        channel.queue_delete(names.queue(service))
        channel.queue_delete(names.dead_letter_queue(service))
        for delay in retry_delays_ms:
            channel.queue_delete(names.retry_queue(service, delay))
    for service in PUBLISHES:
        channel.exchange_delete(names.exchange(service))
