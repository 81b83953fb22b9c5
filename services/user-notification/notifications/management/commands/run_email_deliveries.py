from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from messaging.worker import stop_on_signals
from notifications.email_worker import EmailDeliveryWorker


class Command(BaseCommand):
    help = "Send notifications' e-mails after commit, with retries and back-off, until SIGTERM."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--batch-size", type=int, default=20)

    def handle(self, *args: Any, **options: Any) -> None:
        worker = EmailDeliveryWorker(batch_size=options["batch_size"])
        stop_on_signals(worker.stop_event)
        self.stdout.write(f"e-mail deliveries starting ({settings.EMAIL_BACKEND})")
        worker.run_forever()
        self.stdout.write(f"e-mail deliveries stopped after sending {worker.sent}")
