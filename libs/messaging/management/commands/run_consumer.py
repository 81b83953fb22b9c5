from typing import Any

from django.core.management.base import BaseCommand

from messaging.consumer import Consumer
from messaging.worker import stop_on_signals


class Command(BaseCommand):
    help = "Consume this service's queue: idempotent handlers, retries, dead-lettering."

    def handle(self, *args: Any, **options: Any) -> None:
        consumer = Consumer()
        stop_on_signals(consumer.stop_event)
        self.stdout.write(f"consumer for {consumer.queue} starting")
        consumer.run_forever()
        self.stdout.write(f"consumer stopped after {consumer.handled} messages")
