import email
import socket
import threading
from collections.abc import Callable, Iterator
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings
from rest_framework.test import APIClient

from accounts.models import User
from identity.testing import make_access_token
from messaging import versions
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
    """The body of a valid message of ``event_type``, with a fresh message id, in ``version``:
    by default the one producers publish until told otherwise (``messaging.versions``)."""

    def make(
        event_type: str, data: dict[str, Any], *, source: str = "orders", version: int | None = None
    ) -> bytes:
        if version is None:
            version = versions.version_to_publish(event_type, {})
        envelope = Envelope.new(
            event_type, data, source=source, correlation_id="test", version=version
        )
        return envelope.to_json().encode()

    return make


@pytest.fixture
def deliver(db: None) -> Callable[[bytes], Outcome]:
    """Hand a message body to the consumer's processor, as a delivery from RabbitMQ would."""
    processor = MessageProcessor(consumer="user-notification", handlers=HANDLERS, max_attempts=3)
    return processor.process


class MailServer:
    """A real SMTP server on loopback (aiosmtpd) on a port fixed in advance, so it can be down
    first and come up later. ``refuse_with`` makes it answer DATA with that reply instead."""

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        self.received: list[Message] = []
        self.data_commands = 0
        self.refuse_with: str | None = None
        self.hang_up = False  # close the connection after the data, before any reply
        self.lock = threading.Lock()
        self._controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.data_commands += 1
            if self.hang_up:
                server.transport.close()
                return "421 closing"
            if self.refuse_with:
                return self.refuse_with
            message = email.message_from_bytes(envelope.original_content)
            message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
            self.received.append(message)
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    """Not started: a test starts it (or leaves it down) when it wants to."""
    server = MailServer()
    yield server
    server.stop()


@pytest.fixture
def smtp_settings(settings: Any, mail_server: MailServer) -> Any:
    """E-mail through the SMTP backend to ``mail_server``, three attempts, retries far away."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = mail_server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    settings.DEFAULT_FROM_EMAIL = "Shop <notifications@shop.example>"
    settings.EMAIL_MAX_ATTEMPTS = 3
    settings.EMAIL_RETRY_BASE_SECONDS = 60
    return settings
