from collections.abc import Iterable

from product_replica.models import ProductReplica


def product_replicas_by_id(*, product_ids: Iterable[int]) -> dict[int, ProductReplica]:
    """The replicas of ``product_ids`` that exist, in one query."""
    return {
        replica.product_id: replica
        for replica in ProductReplica.objects.filter(product_id__in=list(product_ids))
    }
