"""Reads of the product replica."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from decimal import Decimal
from typing import NamedTuple

from django.db import connection

from product_replica.models import ProductReplica


class ReplicaPrice(NamedTuple):
    """What placing an order needs of a replica row (no model instance is built for it)."""

    product_id: int
    sku: str
    name: str
    price: Decimal
    active: bool


def product_replicas_by_id(*, product_ids: Iterable[int]) -> dict[int, ReplicaPrice]:
    """The replicas of ``product_ids`` that exist, in one query, by product id.

    On PostgreSQL a written-out ``SELECT`` (:func:`_by_id_sql`), read as plain tuples: this
    runs on every order placed, and the ORM's query building and model instances were most of
    its cost. Other databases (SQLite) take the ORM way.
    """
    ids = list(product_ids)
    rows: Iterable[tuple[int, str, str, Decimal, bool]]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_by_id_sql(), [ids])
            rows = cursor.fetchall()
    else:
        rows = ProductReplica.objects.filter(product_id__in=ids).values_list(*ReplicaPrice._fields)
    return {row[0]: ReplicaPrice._make(row) for row in rows}


@functools.cache
def _by_id_sql() -> str:
    """The statement of :func:`product_replicas_by_id` on PostgreSQL: the columns of
    :class:`ReplicaPrice`, for an array of ids. Its text is the same every time, so psycopg
    prepares it once per connection."""
    qn = connection.ops.quote_name
    columns = ", ".join(qn(name) for name in ReplicaPrice._fields)
    table = qn(ProductReplica._meta.db_table)
    return f"SELECT {columns} FROM {table} WHERE {qn('product_id')} = ANY(%s::bigint[])"  # noqa: S608 (names come from the model)
