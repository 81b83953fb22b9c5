import logging
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from messaging.worker import Heartbeat, serve_metrics, stop_on_signals
from orders.deadlines import OrderDeadlineWorker

logger = logging.getLogger("orders.deadlines")


class Command(BaseCommand):
    help = "Cancel PENDING orders past their deadline, every --interval seconds, until SIGTERM."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--interval", type=float, default=float(settings.ORDER_DEADLINE_SCAN_SECONDS)
        )

    def handle(self, *args: Any, **options: Any) -> None:
        worker = OrderDeadlineWorker(interval=options["interval"])
        stop_on_signals(worker.stop_event)
        worker.heartbeat = Heartbeat.for_command("run_order_deadlines")
        serve_metrics()
        logger.info("order deadlines: scanning every %gs", worker.interval)
        worker.run_forever()
        worker.heartbeat.clear()
        logger.info("order deadlines stopped after cancelling %d orders", worker.expired)
