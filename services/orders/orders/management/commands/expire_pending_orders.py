from typing import Any

from django.core.management.base import BaseCommand

from orders.deadlines import backorder_deadline
from orders.services import orders_expire_backordered, orders_expire_pending


class Command(BaseCommand):
    help = (
        "Cancel, once, every PENDING order past its deadline, and every BACKORDERED one past "
        "ORDERS_BACKORDER_DEADLINE_SECONDS when it is set (and release their stock)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        expired = orders_expire_pending()
        self.stdout.write(f"cancelled {expired} PENDING orders past their deadline")
        deadline = backorder_deadline()
        if deadline is not None:
            backordered = orders_expire_backordered(older_than=deadline)
            self.stdout.write(
                f"cancelled {backordered} BACKORDERED orders past the backorder deadline"
            )
