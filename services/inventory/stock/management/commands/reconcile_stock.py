from typing import Any

from django.core.management.base import BaseCommand, CommandError

from stock.selectors import stock_ledger_mismatches


class Command(BaseCommand):
    help = (
        "Check that every product's on_hand and reserved in each warehouse equal the sums of "
        "its stock ledger there, and that reserved equals what its reservations hold there."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        mismatches = stock_ledger_mismatches()
        if mismatches:
            for mismatch in mismatches:
                self.stderr.write(str(mismatch))
            products = len({mismatch.product_id for mismatch in mismatches})
            raise CommandError(
                f"{products} products disagree with the stock ledger "
                f"({len(mismatches)} product and warehouse rows)"
            )
        self.stdout.write(self.style.SUCCESS("stock counters match the ledger"))
