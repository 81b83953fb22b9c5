from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from django.db import connection, models
from django.utils import timezone

from product_replica.models import ProductReplica


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
    meta = ProductReplica._meta
    columns = [
        "product_id",
        "sku",
        "name",
        "price",
        "active",
        "category",
        "source_occurred_at",
        "updated_at",
    ]
    values = {
        "product_id": product_id,
        "sku": sku,
        "name": name,
        "price": price,
        "active": active,
        "category": category or "",
        "source_occurred_at": occurred_at,
        "updated_at": timezone.now(),
    }
    params = []
    for column in columns:
        field = meta.get_field(column)
        assert isinstance(field, models.Field)
        params.append(field.get_db_prep_save(values[column], connection))
    table = connection.ops.quote_name(meta.db_table)
    quoted = [connection.ops.quote_name(column) for column in columns]
    updates = ", ".join(f"{column} = EXCLUDED.{column}" for column in quoted[1:])
    sql = (
        f"INSERT INTO {table} ({', '.join(quoted)}) "  # noqa: S608 (names come from the model)
        f"VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT ({quoted[0]}) DO UPDATE SET {updates} "
        f"WHERE {table}.{quoted[6]} <= EXCLUDED.{quoted[6]}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount == 1
