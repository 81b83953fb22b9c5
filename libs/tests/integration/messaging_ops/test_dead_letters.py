"""Operating the dead-letter queue on the real broker: list, inspect, replay, purge."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pika
import pytest
from django.core.management import CommandError, call_command

from messaging import topology
from messaging.config import MessagingConfig
from messaging.consumer import Consumer
from messaging_ops import dead_letters
from tests.factories import body, raw_envelope

BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


@pytest.fixture
def config() -> Iterator[MessagingConfig]:
    config = MessagingConfig(
        service="inventory",
        broker_url=BROKER_URL,
        prefix=f"test-dlq-{uuid.uuid4().hex[:8]}.",
        handlers_path=None,
        prefetch=10,
        retry_delays_ms=(50,),
        heartbeat=30,
    )
    connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
    channel = connection.channel()
    topology.declare_exchanges(channel, config.names)
    topology.declare_consumer_queues(channel, config.names, "inventory", config.retry_delays_ms)
    yield config
    for queue in (
        config.names.queue("inventory"),
        config.names.dead_letter_queue("inventory"),
        config.names.retry_queue("inventory", 50),
    ):
        channel.queue_delete(queue)
    for service in topology.PUBLISHES:
        channel.exchange_delete(config.names.exchange(service))
    connection.close()


def _dead_letter(config: MessagingConfig, body: bytes, reason: str = "malformed: test") -> str:
    message_id = str(uuid.uuid4())
    connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_publish(
        "",
        config.names.dead_letter_queue("inventory"),
        body,
        pika.BasicProperties(
            message_id=message_id,
            delivery_mode=2,
            headers={
                "x-death-reason": reason,
                "x-attempt": 3,
                "x-original-routing-key": "order.created",
                "x-dead-lettered-at": "2026-11-25T00:00:00+00:00",
            },
        ),
        mandatory=True,
    )
    connection.close()
    return message_id


def _depth(queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
    depth = connection.channel().queue_declare(queue, passive=True).method.message_count
    connection.close()
    return int(depth)


class TestListing:
    def test_lists_without_removing(self, config: MessagingConfig) -> None:
        first = _dead_letter(config, b"{bad", "malformed: body is not JSON")
        second = _dead_letter(config, b"{worse")
        letters = dead_letters.list_dead_letters(config)
        assert [letter.message_id for letter in letters] == [first, second]
        assert letters[0].reason == "malformed: body is not JSON"
        assert letters[0].routing_key == "order.created"
        assert dead_letters.queue_depth(config) == 2


class TestReplayAndPurge:
    def test_replay_moves_the_selected_message_back_with_attempts_reset(
        self, config: MessagingConfig
    ) -> None:
        keep = _dead_letter(config, b"{keep")
        replayed = _dead_letter(config, b"{replay")
        count = dead_letters.replay(config, lambda letter: letter.message_id == replayed)
        assert count == 1
        assert [m.message_id for m in dead_letters.list_dead_letters(config)] == [keep]

        connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
        method, properties, body = connection.channel().basic_get(
            config.names.queue("inventory"), auto_ack=True
        )
        connection.close()
        assert method is not None
        assert body == b"{replay"
        assert properties.message_id == replayed
        assert "x-attempt" not in (properties.headers or {})
        assert "x-replayed-at" in (properties.headers or {})

    def test_replay_refuses_a_letter_older_than_the_inbox_remembers(
        self, config: MessagingConfig, settings: Any
    ) -> None:
        settings.MESSAGING_RETENTION_DAYS = 7
        settings.MESSAGING_SERVICE = "inventory"  # the command's configuration is this one's
        settings.MESSAGING_PREFIX = config.prefix
        settings.MESSAGING_BROKER_URL = config.broker_url
        now = datetime.now(UTC)
        old = _dead_letter(
            config, body(raw_envelope(occurred_at=(now - timedelta(days=6, hours=1)).isoformat()))
        )
        young = _dead_letter(
            config, body(raw_envelope(occurred_at=(now - timedelta(days=5)).isoformat()))
        )
        with pytest.raises(CommandError, match="MESSAGING_RETENTION_DAYS"):
            call_command("dead_letters", "replay", old)
        with pytest.raises(dead_letters.TooOldToReplay):
            dead_letters.replay(config, lambda letter: letter.message_id == old)
        # Refused, it stays where it was; a younger one goes back.
        assert dead_letters.replay(config, lambda letter: letter.message_id == young) == 1
        assert [m.message_id for m in dead_letters.list_dead_letters(config)] == [old]

    def test_purge_drops_only_the_selected_messages(self, config: MessagingConfig) -> None:
        drop = _dead_letter(config, b"{drop")
        keep = _dead_letter(config, b"{keep")
        assert dead_letters.purge(config, lambda letter: letter.message_id == drop) == 1
        assert [m.message_id for m in dead_letters.list_dead_letters(config)] == [keep]
        assert dead_letters.purge(config, lambda letter: True) == 1
        assert dead_letters.queue_depth(config) == 0

    @pytest.mark.django_db(transaction=True)
    def test_a_replayed_poison_message_returns_to_the_dead_letter_queue_once(
        self, config: MessagingConfig
    ) -> None:
        poison = _dead_letter(config, b"{still not json")
        consumer = Consumer(handlers={}, config=config)
        thread = threading.Thread(target=consumer.run_forever, daemon=True)
        thread.start()
        try:
            assert dead_letters.replay(config, lambda letter: True) == 1
            deadline = time.monotonic() + 10
            while consumer.handled < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)  # room for a loop to show itself, if there were one
            assert consumer.handled == 1
        finally:
            consumer.stop_event.set()
            thread.join(10)
        letters = dead_letters.list_dead_letters(config)
        assert [letter.message_id for letter in letters] == [poison]
        assert _depth(config.names.queue("inventory")) == 0


class TestCommand:
    def test_command_refuses_replay_without_a_selection(self, config: MessagingConfig) -> None:
        from django.core.management.base import CommandError

        with pytest.raises(CommandError, match="needs message ids or --all"):
            call_command("dead_letters", "replay")
