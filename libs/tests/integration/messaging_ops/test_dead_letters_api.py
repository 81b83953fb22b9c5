"""The dead-letter REST API on the real broker: staff only, list, replay, purge, broker down."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pika
import pytest
from django.urls import include, path
from rest_framework.test import APIClient

from identity.keys import ensure_keypair
from identity.testing import make_access_token
from messaging import topology
from messaging.topology import Names
from messaging_ops.api import BODY_PREVIEW_BYTES
from tests.factories import body, raw_envelope

BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
URL = "/api/dead-letters/"

urlpatterns = [path("api/dead-letters/", include("messaging_ops.urls"))]
pytestmark = pytest.mark.urls(__name__)


@pytest.fixture(scope="module")
def private_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keys = tmp_path_factory.mktemp("keys")
    ensure_keypair(keys / "private.pem", keys / "public.pem")
    return keys / "private.pem"


@pytest.fixture
def names(settings: Any, private_key: Path) -> Iterator[Names]:
    """The inventory service's queues under a prefix of this test's own, deleted afterwards."""
    names = Names(f"test-dlq-api-{uuid.uuid4().hex[:8]}.")
    settings.MESSAGING_SERVICE = "inventory"
    settings.MESSAGING_PREFIX = names.prefix
    settings.MESSAGING_BROKER_URL = BROKER_URL
    settings.JWT_PUBLIC_KEY_FILE = str(private_key.with_name("public.pem"))
    connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
    channel = connection.channel()
    topology.declare_exchanges(channel, names)
    topology.declare_consumer_queues(channel, names, "inventory", (50,))
    yield names
    for queue in (
        names.queue("inventory"),
        names.dead_letter_queue("inventory"),
        names.retry_queue("inventory", 50),
    ):
        channel.queue_delete(queue)
    for service in topology.PUBLISHES:
        channel.exchange_delete(names.exchange(service))
    connection.close()


def _client(private_key: Path, *, is_staff: bool) -> APIClient:
    client = APIClient()
    token = make_access_token(private_key, user_id=7, username="op", is_staff=is_staff)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def staff(private_key: Path) -> APIClient:
    return _client(private_key, is_staff=True)


def _dead_letter(
    names: Names, body: bytes, *, message_id: str | None = "", reason: str = "malformed: test"
) -> str | None:
    message_id = str(uuid.uuid4()) if message_id == "" else message_id
    connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_publish(
        "",
        names.dead_letter_queue("inventory"),
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


def _take(queue: str) -> bytes | None:
    connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
    method, _, body = connection.channel().basic_get(queue, auto_ack=True)
    connection.close()
    return body if method is not None else None


class TestAccess:
    def test_anonymous_callers_are_refused(self, names: Names) -> None:
        assert APIClient().get(URL).status_code == 401

    def test_customers_are_refused(self, names: Names, private_key: Path) -> None:
        customer = _client(private_key, is_staff=False)
        _dead_letter(names, b"{bad")
        assert customer.get(URL).status_code == 403
        message_id = staff_list(_client(private_key, is_staff=True))["messages"][0]["id"]
        assert customer.post(f"{URL}{message_id}/replay/").status_code == 403
        assert customer.post(f"{URL}{message_id}/purge/").status_code == 403


def staff_list(client: APIClient, **params: Any) -> dict[str, Any]:
    response = client.get(URL, params)
    assert response.status_code == 200, response.content
    data: dict[str, Any] = response.json()
    return data


class TestListing:
    def test_lists_count_and_messages_without_removing_them(
        self, names: Names, staff: APIClient
    ) -> None:
        first = _dead_letter(names, b"{bad", reason="malformed: body is not JSON")
        second = _dead_letter(names, b'{"ok": true}')
        data = staff_list(staff)
        assert data["service"] == "inventory"
        assert data["queue"] == names.dead_letter_queue("inventory")
        assert data["count"] == 2
        assert [m["id"] for m in data["messages"]] == [first, second]
        message = data["messages"][0]
        assert message["message_id"] == first
        assert message["routing_key"] == "order.created"
        assert message["reason"] == "malformed: body is not JSON"
        assert message["dead_lettered_at"] == "2026-11-25T00:00:00+00:00"
        assert message["attempts"] == 3
        assert message["body_preview"] == "{bad"
        assert message["headers"]["x-original-routing-key"] == "order.created"
        assert staff_list(staff)["count"] == 2  # listing is only looking

    def test_a_huge_body_is_previewed_up_to_10_kb_as_text(
        self, names: Names, staff: APIClient
    ) -> None:
        _dead_letter(names, b"x" * 30_000 + b"\xff")
        (message,) = staff_list(staff)["messages"]
        assert message["body_size"] == 30_001
        assert message["body_truncated"] is True
        assert message["body_preview"] == "x" * BODY_PREVIEW_BYTES

    def test_the_limit_bounds_the_list_but_not_the_count(
        self, names: Names, staff: APIClient
    ) -> None:
        for _ in range(3):
            _dead_letter(names, b"{bad")
        data = staff_list(staff, limit=2)
        assert (data["count"], len(data["messages"])) == (3, 2)
        assert staff.get(URL, {"limit": 0}).status_code == 400

    def test_a_missing_queue_reads_as_empty(
        self, names: Names, staff: APIClient, settings: Any
    ) -> None:
        settings.MESSAGING_PREFIX = f"test-dlq-api-missing-{uuid.uuid4().hex[:8]}."
        data = staff_list(staff)
        assert (data["count"], data["messages"]) == (0, [])


class TestReplayAndPurge:
    def test_replay_puts_the_message_back_on_the_service_queue(
        self, names: Names, staff: APIClient
    ) -> None:
        keep = _dead_letter(names, b"{keep")
        replayed = _dead_letter(names, b"{replay")
        response = staff.post(f"{URL}{replayed}/replay/")
        assert response.status_code == 200, response.content
        assert response.json() == {"replayed": 1, "count": 1}
        assert [m["id"] for m in staff_list(staff)["messages"]] == [keep]
        assert _take(names.queue("inventory")) == b"{replay"

    def test_a_letter_older_than_the_inbox_remembers_is_a_409_and_stays(
        self, names: Names, staff: APIClient, settings: Any
    ) -> None:
        settings.MESSAGING_RETENTION_DAYS = 7
        occurred = (datetime.now(UTC) - timedelta(days=6, hours=1)).isoformat()
        old = _dead_letter(names, body(raw_envelope(occurred_at=occurred)))
        response = staff.post(f"{URL}{old}/replay/")
        assert response.status_code == 409, response.content
        assert response.json()["code"] == "too_old_to_replay"
        assert "MESSAGING_RETENTION_DAYS" in response.json()["detail"]
        assert [m["id"] for m in staff_list(staff)["messages"]] == [old]

    def test_purge_drops_only_that_message(self, names: Names, staff: APIClient) -> None:
        drop = _dead_letter(names, b"{drop")
        keep = _dead_letter(names, b"{keep")
        response = staff.post(f"{URL}{drop}/purge/")
        assert response.status_code == 200, response.content
        assert response.json() == {"purged": 1, "count": 1}
        assert [m["id"] for m in staff_list(staff)["messages"]] == [keep]
        assert _take(names.queue("inventory")) is None

    def test_a_message_without_an_id_is_addressed_by_its_fingerprint(
        self, names: Names, staff: APIClient
    ) -> None:
        _dead_letter(names, b"raw poison", message_id=None)
        (message,) = staff_list(staff)["messages"]
        assert message["message_id"] is None
        assert message["id"].startswith("body-")
        assert staff.post(f"{URL}{message['id']}/replay/").status_code == 200
        assert _take(names.queue("inventory")) == b"raw poison"

    @pytest.mark.parametrize("action", ["replay", "purge"])
    def test_an_unknown_id_is_a_404_and_changes_nothing(
        self, names: Names, staff: APIClient, action: str
    ) -> None:
        _dead_letter(names, b"{stays")
        response = staff.post(f"{URL}{uuid.uuid4()}/{action}/")
        assert response.status_code == 404
        assert response.json()["detail"] == "No dead letter with this id."
        assert staff_list(staff)["count"] == 1


class TestBrokerDown:
    @pytest.mark.parametrize(
        ("method", "suffix"), [("get", ""), ("post", "x/replay/"), ("post", "x/purge/")]
    )
    def test_an_unreachable_broker_is_a_503_with_a_message(
        self, names: Names, staff: APIClient, settings: Any, method: str, suffix: str
    ) -> None:
        settings.MESSAGING_BROKER_URL = "amqp://guest:guest@127.0.0.1:1/%2F"  # nothing listens
        response = getattr(staff, method)(f"{URL}{suffix}")
        assert response.status_code == 503
        assert response.json() == {
            "detail": "The message broker cannot be reached right now; try again in a moment.",
            "code": "broker_unavailable",
        }
