from typing import Any

from django.core.management.base import BaseCommand

from orders.services import orders_expire_pending


class Command(BaseCommand):
    help = "Cancel, once, every PENDING order past its deadline (and release its stock)."

    def handle(self, *args: Any, **options: Any) -> None:
        expired = orders_expire_pending()
        self.stdout.write(f"cancelled {expired} PENDING orders past their deadline")
