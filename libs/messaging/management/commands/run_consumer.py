import logging
from typing import Any

from django.core.management.base import BaseCommand

from messaging.consumer import Consumer
from messaging.worker import Heartbeat, serve_metrics, stop_on_signals

logger = logging.getLogger("messaging.consumer")


class Command(BaseCommand):
    help = "Consume this service's queue: idempotent handlers, retries, dead-lettering."

    def handle(self, *args: Any, **options: Any) -> None:
        consumer = Consumer()
        stop_on_signals(consumer.stop_event)
        consumer.heartbeat = Heartbeat.for_command("run_consumer")
        serve_metrics()
        logger.info("consumer for %s starting", consumer.queue)
        consumer.run_forever()
        consumer.heartbeat.clear()
        logger.info("consumer stopped after %d messages", consumer.handled)
