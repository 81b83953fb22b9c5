"""Event versions on the real PostgreSQL: what publish_event writes to the outbox, and what a
consumer's handler is given, while a payload has two versions (messaging.versions)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.db import transaction

from messaging import versions
from messaging.consumer import ACK, MessageProcessor
from messaging.envelope import Envelope
from messaging.models import InboxMessage, OutboxMessage
from messaging.outbox import publish_event
from tests.versioning import released_v2  # noqa: F401 - fixture

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("released_v2")]
ORDER = str(uuid.uuid4())
NEWEST = {"order_id": ORDER, "reason": "cancelled", "partial": False}


@pytest.fixture(autouse=True)
def inventory_service(settings: Any) -> None:
    settings.MESSAGING_SERVICE = "inventory"


def published(settings: Any, setting: str, data: dict[str, Any]) -> dict[str, Any]:
    settings.MESSAGING_EVENT_VERSIONS = setting
    with transaction.atomic():
        publish_event("stock.released", data, correlation_id=ORDER)
    body: dict[str, Any] = json.loads(OutboxMessage.objects.order_by("-id")[0].body)
    return body


def test_the_outbox_holds_the_version_the_consumers_read(settings: Any) -> None:
    body = published(settings, "", NEWEST)
    assert (body["version"], body["data"]) == (1, {"order_id": ORDER, "reason": "cancelled"})
    body = published(settings, "stock.released=2", NEWEST)
    assert (body["version"], body["data"]) == (2, NEWEST)
    body = published(settings, "latest", {**NEWEST, "partial": True})
    assert (body["version"], body["data"]["partial"]) == (2, True)


def test_a_payload_the_old_version_cannot_say_fails_its_transaction(settings: Any) -> None:
    settings.MESSAGING_EVENT_VERSIONS = ""
    with pytest.raises(versions.NotExpressible), transaction.atomic():
        publish_event("stock.released", {**NEWEST, "partial": True}, correlation_id=ORDER)
    assert OutboxMessage.objects.count() == 0


def test_a_handler_gets_the_newest_shape_from_either_version() -> None:
    seen: list[Envelope] = []
    processor = MessageProcessor("orders", {"stock.released": seen.append}, max_attempts=3)
    for version, data in ((1, {"order_id": ORDER, "reason": "old"}), (2, {**NEWEST})):
        message = Envelope.new(
            "stock.released", data, source="inventory", correlation_id=ORDER, version=version
        )
        assert processor.process(message.to_json().encode()) == ACK
    assert [(e.version, e.data["partial"], e.data["reason"]) for e in seen] == [
        (2, False, "old"),
        (2, False, "cancelled"),
    ]
    assert InboxMessage.objects.count() == 2
