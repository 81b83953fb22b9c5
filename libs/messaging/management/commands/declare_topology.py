from typing import Any

from django.core.management.base import BaseCommand

from messaging import topology
from messaging.broker import connect
from messaging.config import get_config


class Command(BaseCommand):
    help = (
        "Declare the whole broker layout (every exchange, queue, retry and dead-letter queue). "
        "Needs an account allowed to configure every name: run by `make up` with the local "
        "account; in containers the broker's definitions file does it instead."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        config = get_config()
        connection = connect(config, name="declare-topology")
        try:
            topology.declare_all(connection.channel(), config.names, config.retry_delays_ms)
        finally:
            connection.close()
        self.stdout.write(f"declared the broker layout (prefix {config.prefix!r})")
