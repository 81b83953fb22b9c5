"""Operating a service's dead-letter queue: list, inspect, replay and purge its messages.

Messages are read with ``basic_get`` without acking; whatever is not replayed or purged is
returned to the queue, in order, when the channel closes. Replaying publishes the message back
to the service's own queue with the attempt count reset, and acks the dead-letter copy only
after the broker confirmed the replay. A message that is still bad comes back to the
dead-letter queue on its own: replay is an operator's action, never a loop.

A letter published longer ago than ``messaging.pruning.replay_max_age()`` is not replayed: the
inbox may have forgotten that a copy of it was applied (``MESSAGING_RETENTION_DAYS``), and the
replay would apply it a second time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

from messaging.broker import connect
from messaging.config import MessagingConfig
from messaging.consumer import ATTEMPT_HEADER
from messaging.pruning import replay_max_age


class TooOldToReplay(Exception):
    """A selected dead letter was published before what the inbox still remembers."""


@dataclass(frozen=True)
class DeadLetter:
    delivery_tag: int
    message_id: str | None
    routing_key: str | None
    reason: str
    dead_lettered_at: str
    headers: dict[str, Any]
    body: bytes

    def occurred_at(self) -> datetime | None:
        """When its event occurred (its envelope's ``occurred_at``); None for a body that is no
        envelope (such a message was never applied: replaying it is harmless)."""
        try:
            moment = datetime.fromisoformat(json.loads(self.body)["occurred_at"])
        except (ValueError, TypeError, KeyError):
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def summary(self) -> str:
        return (
            f"{self.message_id or '-'}  {self.routing_key or '-'}  {self.dead_lettered_at}  "
            f"{self.reason.splitlines()[0][:120] if self.reason else ''}"
        )


def _as_text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")


@contextmanager
def _channel(config: MessagingConfig) -> Iterator[BlockingChannel]:
    connection = connect(config, name="dead-letters")
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        yield channel
    finally:
        connection.close()  # unacked messages go back to the queue


def queue_depth(config: MessagingConfig) -> int:
    with _channel(config) as channel:
        queue = config.names.dead_letter_queue(config.service)
        return int(channel.queue_declare(queue, passive=True).method.message_count)


def _fetch(channel: BlockingChannel, queue: str, limit: int) -> list[DeadLetter]:
    letters: list[DeadLetter] = []
    while len(letters) < limit:
        method, properties, body = channel.basic_get(queue, auto_ack=False)
        if method is None:
            break
        headers = dict(properties.headers or {})
        letters.append(
            DeadLetter(
                delivery_tag=method.delivery_tag,
                message_id=properties.message_id,
                routing_key=_as_text(headers.get("x-original-routing-key")) or properties.type,
                reason=_as_text(headers.get("x-death-reason")),
                dead_lettered_at=_as_text(headers.get("x-dead-lettered-at")),
                headers=headers,
                body=body,
            )
        )
    return letters


def list_dead_letters(config: MessagingConfig, limit: int = 100) -> list[DeadLetter]:
    with _channel(config) as channel:
        return _fetch(channel, config.names.dead_letter_queue(config.service), limit)


def _act_on(
    config: MessagingConfig,
    select: Callable[[DeadLetter], bool],
    act: Callable[[BlockingChannel, DeadLetter], None],
    limit: int,
) -> int:
    done = 0
    with _channel(config) as channel:
        for letter in _fetch(channel, config.names.dead_letter_queue(config.service), limit):
            if select(letter):
                act(channel, letter)
                channel.basic_ack(letter.delivery_tag)
                done += 1
    return done


def replay(
    config: MessagingConfig, select: Callable[[DeadLetter], bool], limit: int = 10_000
) -> int:
    """Send the selected dead letters back to the service's queue; return how many.

    Raises :class:`TooOldToReplay` at the first selected letter too old to replay (those before
    it are replayed, it and the rest stay in the queue)."""
    queue = config.names.queue(config.service)

    oldest = datetime.now(UTC) - replay_max_age()

    def _republish(channel: BlockingChannel, letter: DeadLetter) -> None:
        occurred_at = letter.occurred_at()
        if occurred_at is not None and occurred_at < oldest:
            # Not acked: it stays in the dead-letter queue for the operator to decide.
            raise TooOldToReplay(
                f"dead letter {letter.message_id} occurred at {occurred_at.isoformat()}, before "
                f"{oldest.isoformat()}: the inbox may no longer remember it was applied "
                "(MESSAGING_RETENTION_DAYS); see docs/operations.md, 'Bounded tables'"
            )
        headers = {
            key: value
            for key, value in letter.headers.items()
            if key not in {ATTEMPT_HEADER, "x-death-reason", "x-last-error"}
        }
        headers["x-replayed-at"] = datetime.now(UTC).isoformat()
        channel.basic_publish(
            exchange=config.names.retry_exchange(config.service),  # routes by queue name
            routing_key=queue,
            body=letter.body,
            properties=pika.BasicProperties(
                content_type="application/json",
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=letter.message_id,
                type=letter.routing_key,
                headers=headers,
            ),
            mandatory=True,
        )

    return _act_on(config, select, _republish, limit)


def purge(
    config: MessagingConfig, select: Callable[[DeadLetter], bool], limit: int = 10_000
) -> int:
    """Drop the selected dead letters for good; return how many."""
    return _act_on(config, select, lambda channel, letter: None, limit)
