from typing import Any

from django.core.management.base import BaseCommand

from messaging.relay import OutboxRelay
from messaging.worker import stop_on_signals


class Command(BaseCommand):
    help = "Publish this service's outbox to RabbitMQ with publisher confirms."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--batch-size", type=int, default=200)

    def handle(self, *args: Any, **options: Any) -> None:
        relay = OutboxRelay(batch_size=options["batch_size"])
        stop_on_signals(relay.stop_event)
        self.stdout.write("outbox relay starting")
        relay.run_forever()
        self.stdout.write(f"outbox relay stopped after {relay.published} messages")
