from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from messaging.worker import stop_on_signals
from orders.deadlines import OrderDeadlineWorker


class Command(BaseCommand):
    help = "Cancel PENDING orders past their deadline, every --interval seconds, until SIGTERM."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--interval", type=float, default=float(settings.ORDER_DEADLINE_SCAN_SECONDS)
        )

    def handle(self, *args: Any, **options: Any) -> None:
        worker = OrderDeadlineWorker(interval=options["interval"])
        stop_on_signals(worker.stop_event)
        self.stdout.write(f"order deadlines: scanning every {worker.interval:g}s")
        worker.run_forever()
        self.stdout.write(f"order deadlines stopped after cancelling {worker.expired} orders")
