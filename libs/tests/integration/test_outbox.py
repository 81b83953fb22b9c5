"""publish_event on the real PostgreSQL: one row in the caller's transaction, or none."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from messaging.envelope import decode
from messaging.models import OutboxMessage
from messaging.outbox import OutsideTransaction, publish_event
from messaging.schemas import SchemaViolation
from tests.factories import order_created

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def orders_service(settings: Any) -> None:
    settings.MESSAGING_SERVICE = "orders"
    settings.MESSAGING_PREFIX = "unit-prefix."


def test_outside_a_transaction_it_raises_and_writes_nothing() -> None:
    with pytest.raises(OutsideTransaction, match=r"publish_event\('order.created'\) called"):
        publish_event("order.created", order_created(), correlation_id="c-1")
    assert OutboxMessage.objects.count() == 0


def test_inside_a_transaction_it_writes_one_row() -> None:
    data = order_created()
    with transaction.atomic():
        envelope = publish_event("order.created", data, correlation_id=data["order_id"])
    row = OutboxMessage.objects.get()
    assert str(row.message_id) == envelope.id
    assert row.exchange == "unit-prefix.orders.events"
    assert row.routing_key == "order.created"
    assert row.correlation_id == data["order_id"]
    assert row.sent_at is None and row.attempts == 0 and row.last_error == ""
    assert decode(row.body.encode()) == envelope
    assert envelope.source == "orders" and envelope.data == data


def test_rollback_leaves_no_row() -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        publish_event("order.created", order_created(), correlation_id="c-1")
        assert OutboxMessage.objects.count() == 1
        raise RuntimeError("the state change failed")
    assert OutboxMessage.objects.count() == 0


def test_rolled_back_savepoint_drops_only_its_row() -> None:
    with transaction.atomic():
        publish_event("order.created", order_created(), correlation_id="kept")
        with pytest.raises(RuntimeError), transaction.atomic():
            publish_event("order.created", order_created(), correlation_id="dropped")
            raise RuntimeError
    assert list(OutboxMessage.objects.values_list("correlation_id", flat=True)) == ["kept"]


def test_an_invalid_payload_fails_the_transaction_that_would_cause_it() -> None:
    invalid = re.escape("order.created v1 payload invalid at user_id")
    with pytest.raises(SchemaViolation, match=invalid), transaction.atomic():
        publish_event("order.created", order_created(user_id=-1), correlation_id="c-1")
    assert OutboxMessage.objects.count() == 0


def test_a_service_cannot_publish_another_services_event() -> None:
    refused = re.escape("'orders' does not publish 'stock.reserved'")
    with pytest.raises(SchemaViolation, match=refused), transaction.atomic():
        publish_event(
            "stock.reserved",
            {"order_id": order_created()["order_id"], "lines": order_created()["lines"]},
            correlation_id="c-1",
        )
    assert OutboxMessage.objects.count() == 0


def test_causation_links_the_event_to_the_one_that_caused_it() -> None:
    with transaction.atomic():
        cause = publish_event("order.created", order_created(), correlation_id="order-1")
        effect = publish_event(
            "order.cancelled",
            {"order_id": cause.data["order_id"], "user_id": 7, "reason": "changed mind"},
            correlation_id=cause.correlation_id,
            causation=cause,
        )
    assert effect.causation_id == cause.id
    assert effect.correlation_id == "order-1"
    assert OutboxMessage.objects.count() == 2


def test_an_event_costs_its_transaction_one_insert_and_nothing_else() -> None:
    # No NOTIFY: the writer publishes its events itself, the relay only polls for leftovers.
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        publish_event("order.created", order_created(), correlation_id="c-1")
        publish_event("order.created", order_created(), correlation_id="c-2")
    statements = [q["sql"] for q in queries if q["sql"] not in ("BEGIN", "COMMIT")]
    assert len(statements) == 2 and all(sql.startswith("INSERT") for sql in statements), statements
