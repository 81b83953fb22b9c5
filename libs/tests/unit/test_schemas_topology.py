"""The contract between services: every published event has a schema and a consumer."""

from __future__ import annotations

import re

import pytest

from messaging import schemas, topology
from messaging.config import MessagingConfig
from messaging.topology import Names


def test_names_with_and_without_prefix() -> None:
    plain = Names()
    assert plain.exchange("orders") == "orders.events"
    assert plain.queue("inventory") == "inventory"
    assert plain.dead_letter_queue("inventory") == "inventory.dlq"
    assert plain.retry_queue("inventory", 5000) == "inventory.retry.5000ms"
    assert plain.retry_exchange("inventory") == "inventory.retry"
    assert plain.dead_letter_exchange("inventory") == "inventory.dead"
    test = Names("test-42.")
    assert test.exchange("orders") == "test-42.orders.events"
    assert test.queue("user-notification") == "test-42.user-notification"
    assert test.dead_letter_queue("inventory") == "test-42.inventory.dlq"
    assert test.retry_queue("inventory", 50) == "test-42.inventory.retry.50ms"


def test_config_names_and_max_attempts() -> None:
    config = MessagingConfig(
        service="orders",
        broker_url="amqp://guest:guest@127.0.0.1:5672/%2F",
        prefix="p.",
        handlers_path=None,
        prefetch=10,
        retry_delays_ms=(50, 100, 200),
        heartbeat=30,
    )
    assert config.names == Names("p.")
    assert config.max_attempts == 4


@pytest.mark.parametrize(
    ("service", "event_type"),
    [(s, e) for s, events in topology.PUBLISHES.items() for e in events],
)
def test_every_published_event_has_a_schema(service: str, event_type: str) -> None:
    version = schemas.current_version(event_type)
    assert schemas.is_known(event_type, version)
    assert topology.publisher_of(event_type) == service


def test_every_schema_is_published_by_exactly_one_service() -> None:
    published = [e for events in topology.PUBLISHES.values() for e in events]
    assert len(published) == len(set(published))
    assert {name for name, _ in schemas.EVENTS} == set(published)


@pytest.mark.parametrize(
    ("service", "event_type"),
    [(s, e) for s, events in topology.CONSUMES.items() for e in events],
)
def test_every_consumed_event_has_a_publisher(service: str, event_type: str) -> None:
    publisher = topology.publisher_of(event_type)  # KeyError when nobody publishes it
    assert event_type in topology.PUBLISHES[publisher]
    assert schemas.is_known(event_type, schemas.current_version(event_type))


def test_every_published_event_is_consumed_somewhere() -> None:
    # The relay publishes with mandatory=True: an event nobody consumes would be unroutable.
    consumed = {e for events in topology.CONSUMES.values() for e in events}
    for events in topology.PUBLISHES.values():
        assert set(events) <= consumed


def test_publisher_of_an_unknown_event() -> None:
    with pytest.raises(KeyError, match=re.escape("no service publishes 'order.teleported'")):
        topology.publisher_of("order.teleported")


def test_unknown_type_has_no_current_version() -> None:
    with pytest.raises(schemas.SchemaViolation, match="unknown event type"):
        schemas.current_version("order.teleported")
    with pytest.raises(
        schemas.SchemaViolation, match=re.escape("unknown event type 'order.created' v")
    ):
        schemas.validate("order.created", 2, {})
