"""Settings for running the management commands as real processes in the tests."""

from typing import Any

from tests.settings import *  # noqa: F403

MESSAGING_SERVICE = "inventory"
MESSAGING_HANDLERS = "tests.worker_settings.HANDLERS"
WORKER_JOBS = ("messaging.consumer.Consumer", "messaging.relay.OutboxRelay")


def _accept(envelope: Any) -> None:
    """Applying is recording it in the inbox, which the consumer does around this call."""


HANDLERS = {"order.created": _accept}
