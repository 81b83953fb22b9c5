from typing import Any

from django.core.management.base import BaseCommand, CommandError

from stock.selectors import stock_ledger_mismatches


class Command(BaseCommand):
    help = "Check that every product's on_hand and reserved equal the sums of its stock ledger."

    def handle(self, *args: Any, **options: Any) -> None:
        mismatches = stock_ledger_mismatches()
        if mismatches:
            for mismatch in mismatches:
                self.stderr.write(str(mismatch))
            raise CommandError(f"{len(mismatches)} products disagree with the stock ledger")
        self.stdout.write(self.style.SUCCESS("stock counters match the ledger"))
