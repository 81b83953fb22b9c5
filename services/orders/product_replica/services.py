from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from django.utils import timezone

from product_replica import persistence


def product_replica_upsert(
    *,
    product_id: int,
    sku: str,
    name: str,
    price: Decimal,
    active: bool,
    category: str | None,
    occurred_at: datetime,
) -> bool:
    """Store this version of a product unless a newer one is stored; True when it was written.

    One ``INSERT … ON CONFLICT DO UPDATE … WHERE`` statement, so two consumers applying
    versions of the same product at once cannot interleave a read and a write.
    """
    if occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=UTC)
    return persistence.replica_upsert(
        {
            "product_id": product_id,
            "sku": sku,
            "name": name,
            "price": price,
            "active": active,
            "category": category or "",
            "source_occurred_at": occurred_at,
            "updated_at": timezone.now(),
        }
    )
