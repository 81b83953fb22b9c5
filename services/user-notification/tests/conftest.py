from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from accounts.models import User
from identity.testing import make_access_token
from messaging.consumer import MessageProcessor, Outcome
from messaging.envelope import Envelope
from notifications.handlers import HANDLERS

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    def make(username: str = "alice", *, is_staff: bool = False, **extra: Any) -> User:
        extra.setdefault("email", f"{username}@example.com")
        return User.objects.create_user(
            username=username, password=PASSWORD, is_staff=is_staff, **extra
        )

    return make


@pytest.fixture
def client_for() -> Callable[[User], APIClient]:
    """An API client carrying an access token signed the way every service's tests sign one."""

    def authenticated(user: User) -> APIClient:
        token = make_access_token(
            settings.JWT_PRIVATE_KEY_FILE,
            user_id=user.pk,
            username=user.username,
            is_staff=user.is_staff,
        )
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    return authenticated


@pytest.fixture
def make_message() -> Callable[..., bytes]:
    """The body of a valid message of ``event_type``, with a fresh message id."""

    def make(event_type: str, data: dict[str, Any], *, source: str = "orders") -> bytes:
        envelope = Envelope.new(event_type, data, source=source, correlation_id="test")
        return envelope.to_json().encode()

    return make


@pytest.fixture
def deliver(db: None) -> Callable[[bytes], Outcome]:
    """Hand a message body to the consumer's processor, as a delivery from RabbitMQ would."""
    processor = MessageProcessor(consumer="user-notification", handlers=HANDLERS, max_attempts=3)
    return processor.process
