"""Reads of the product replica."""

from __future__ import annotations

from collections.abc import Iterable

from product_replica import persistence
from product_replica.persistence import ReplicaPrice


def product_replicas_by_id(*, product_ids: Iterable[int]) -> dict[int, ReplicaPrice]:
    """The replicas of ``product_ids`` that exist, in one query, by product id (what pricing
    an order needs, as tuples: see :mod:`product_replica.persistence`)."""
    return persistence.replica_prices_get(product_ids=product_ids)
