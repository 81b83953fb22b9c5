"""How stock moves: locked counters, one ledger entry per change, an alert when it runs low.

Rows of ``StockLevel`` are always locked in product id order, whoever locks them, so two
transactions can never wait on each other in a cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db.models import Case, F, IntegerField, Value, When

from messaging.envelope import Envelope
from messaging.outbox import publish_event
from stock.availability import crossed_low_threshold
from stock.models import StockLedgerEntry, StockLevel

Deltas = Mapping[int, tuple[int, int]]  # product id -> (change of on_hand, change of reserved)


def lock_levels(product_ids: Iterable[int]) -> dict[int, StockLevel]:
    levels = (
        StockLevel.objects.select_for_update(of=("self",))
        .select_related("product")
        .filter(product_id__in=list(product_ids))
        .order_by("product_id")
    )
    return {level.product_id: level for level in levels}


def apply(
    levels: Mapping[int, StockLevel], deltas: Deltas, **ledger: Any
) -> list[StockLedgerEntry]:
    """Apply ``deltas`` to locked levels: one UPDATE, one ledger INSERT, whatever the count."""
    StockLevel.objects.filter(product_id__in=list(deltas)).update(
        on_hand=F("on_hand") + _per_product(deltas, 0),
        reserved=F("reserved") + _per_product(deltas, 1),
    )
    for pid, (on_hand, reserved) in deltas.items():
        levels[pid].on_hand += on_hand
        levels[pid].reserved += reserved
    return StockLedgerEntry.objects.bulk_create(
        StockLedgerEntry(product_id=pid, delta_on_hand=on_hand, delta_reserved=reserved, **ledger)
        for pid, (on_hand, reserved) in deltas.items()
    )


def _per_product(deltas: Deltas, index: int) -> Case:
    whens = [When(product_id=pid, then=Value(delta[index])) for pid, delta in deltas.items()]
    return Case(*whens, default=Value(0), output_field=IntegerField())


def announce_low_stock(
    levels: Mapping[int, StockLevel],
    before: Mapping[int, int],
    *,
    correlation_id: str,
    cause: Envelope | None = None,
) -> None:
    for pid, level in levels.items():
        threshold = level.product.low_stock_threshold
        if crossed_low_threshold(before=before[pid], after=level.available, threshold=threshold):
            data = {
                "product_id": pid,
                "sku": level.product.sku,
                "name": level.product.name,
                "available": level.available,
                "threshold": threshold,
            }
            publish_event("stock.low", data, correlation_id=correlation_id, causation=cause)
