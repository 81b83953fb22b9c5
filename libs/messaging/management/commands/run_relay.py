import logging
from typing import Any

from django.core.management.base import BaseCommand

from messaging.relay import OutboxRelay
from messaging.worker import Heartbeat, serve_metrics, stop_on_signals

logger = logging.getLogger("messaging.relay")


class Command(BaseCommand):
    help = "Publish this service's outbox to RabbitMQ with publisher confirms."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--batch-size", type=int, default=200)

    def handle(self, *args: Any, **options: Any) -> None:
        relay = OutboxRelay(batch_size=options["batch_size"])
        stop_on_signals(relay.stop_event)
        relay.heartbeat = Heartbeat.for_command("run_relay")
        serve_metrics()
        logger.info("outbox relay starting")
        relay.run_forever()
        relay.heartbeat.clear()
        logger.info("outbox relay stopped after %d messages", relay.published)
