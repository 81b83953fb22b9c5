from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from stock.models import StockLedgerEntry, StockLevel


def stock_ledger_list(*, product_id: int) -> QuerySet[StockLedgerEntry]:
    return StockLedgerEntry.objects.filter(product_id=product_id).order_by("-id")


def stock_level_get(*, product_id: int) -> StockLevel:
    return StockLevel.objects.get(product_id=product_id)


@dataclass(frozen=True)
class Mismatch:
    product_id: int
    sku: str
    on_hand: int
    ledger_on_hand: int
    reserved: int
    ledger_reserved: int

    def __str__(self) -> str:
        return (
            f"product {self.product_id} ({self.sku}): on_hand {self.on_hand} but ledger "
            f"{self.ledger_on_hand}; reserved {self.reserved} but ledger {self.ledger_reserved}"
        )


def stock_ledger_mismatches() -> list[Mismatch]:
    """Every product whose counters differ from the sum of its ledger; empty when all agree."""
    rows = (
        StockLevel.objects.annotate(
            sku=F("product__sku"),
            ledger_on_hand=_ledger_sum("delta_on_hand"),
            ledger_reserved=_ledger_sum("delta_reserved"),
        )
        .filter(~Q(on_hand=F("ledger_on_hand")) | ~Q(reserved=F("ledger_reserved")))
        .order_by("product_id")
        .values(*Mismatch.__dataclass_fields__)
    )
    return [Mismatch(**row) for row in rows]


def _ledger_sum(field: str) -> Coalesce:
    total = (
        StockLedgerEntry.objects.filter(product_id=OuterRef("product_id"))
        .order_by()
        .values("product_id")
        .annotate(total=Sum(field))
        .values("total")
    )
    return Coalesce(Subquery(total), Value(0), output_field=IntegerField())
