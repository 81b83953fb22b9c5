import logging
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from messaging.worker import Heartbeat, serve_metrics, stop_on_signals
from notifications.email_worker import BATCH_SIZE, EmailDeliveryWorker

logger = logging.getLogger("notifications.email")


class Command(BaseCommand):
    help = "Send notifications' e-mails after commit, with retries and back-off, until SIGTERM."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)

    def handle(self, *args: Any, **options: Any) -> None:
        worker = EmailDeliveryWorker(batch_size=options["batch_size"])
        stop_on_signals(worker.stop_event)
        worker.heartbeat = Heartbeat.for_command("run_email_deliveries")
        serve_metrics()
        logger.info("e-mail deliveries starting (%s)", settings.EMAIL_BACKEND)
        worker.run_forever()
        worker.heartbeat.clear()
        logger.info("e-mail deliveries stopped after sending %d", worker.sent)
