"""Backorders: orders that wait for stock, and the passes that serve them.

An order short only of products that allow backorders holds what there was and waits; its
``Backorder`` rows (one per product it is short of) are its places in those products' waiting
lists, in arrival order (the reservation's id). Every increase of a product's stock serves its
waiting list in the transaction of the increase, so no order placed meanwhile can take the
units first:

* the orders that have waited longer than ``INVENTORY_BACKORDER_PRIORITY_AFTER_SECONDS`` go
  first, in arrival order, each taking what it can of what it still misses and keeping it (a
  large old order fills up delivery by delivery, so it cannot starve);
* then the others in arrival order, each all or nothing: completed only if the stock completes
  it, otherwise it keeps its place and takes nothing (it does not hold back a later order that
  the stock can complete).

Locks: a pass needs every product of every order it may serve locked, and rows are locked once,
in (product, warehouse) order (``stock.movements``). So the products are read first, unlocked
(:func:`products_to_lock`), locked in one ``lock_levels`` call before the increase, and the
waiting list is read again under the locks (:func:`serve`). An order that names a product the
pass did not lock (it arrived in between) is left for another pass: its product is marked in
``BackorderWake`` and the worker's :class:`BackorderJob` serves it in its own transaction, as
it serves products whose waiting orders became overdue while stock was left. A pass only acts on
the state it reads: run twice, the second changes nothing.

A BACKORDERED reservation is written only by a transaction that holds the level locks of all
its products, taken before the reservation's row: the order in which every writer takes them.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from messaging import crash_points
from messaging.envelope import Envelope
from messaging.outbox import publish_event
from messaging.worker import Job
from stock import movements
from stock.availability import Key, Offer, take_available
from stock.models import (
    Backorder,
    BackorderWake,
    Reservation,
    StockLedgerEntry,
    StockLevel,
    Warehouse,
)

logger = logging.getLogger(__name__)


def priority_after() -> timedelta:
    """How long an order waits before it is served first, taking what it can."""
    return timedelta(seconds=settings.INVENTORY_BACKORDER_PRIORITY_AFTER_SECONDS)


def products_to_lock(product_ids: Iterable[int]) -> set[int]:
    """These products and every product of the orders waiting on them (read without locks:
    what a pass over them must lock)."""
    ids = set(product_ids)
    waiting_on = Backorder.objects.filter(product_id__in=ids).values("reservation_id")
    others = (
        Backorder.objects.filter(reservation_id__in=waiting_on)
        .values_list("product_id", flat=True)
        .distinct()
    )
    return ids | set(others)


def lock_for_increase(product_ids: Iterable[int]) -> movements.Levels:
    """Lock what a stock increase of these products and the pass after it need, at once."""
    return movements.lock_levels(products_to_lock(product_ids))


def record_waiting(
    decisions: Sequence[movements.Decision], written: Mapping[str, Reservation]
) -> None:
    """The waiting rows of the backordered orders among ``decisions``: one INSERT, none when no
    order waits."""
    rows = [
        Backorder(reservation_id=written[d.order_id].pk, product_id=pid, missing=missing)
        for d in decisions
        if d.waiting and d.order_id in written
        for pid, missing in d.waiting.items()
    ]
    if rows:
        Backorder.objects.bulk_create(rows)


@dataclass
class Waiting:
    """One BACKORDERED order as a pass sees it: what it holds, what it still misses."""

    reservation: Reservation
    missing: dict[int, int]  # per product
    rows: dict[int, Backorder]
    overdue: bool
    taken: dict[Key, int]  # by this pass

    @property
    def complete(self) -> bool:
        return not any(self.missing.values())


def waiting_on(product_ids: Collection[int]) -> list[Waiting]:
    """The BACKORDERED orders waiting on any of these products, in arrival order."""
    waiting_on = Backorder.objects.filter(product_id__in=product_ids).values("reservation_id")
    rows = (
        Backorder.objects.filter(
            reservation_id__in=waiting_on, reservation__status=Reservation.Status.BACKORDERED
        )
        .select_related("reservation")
        .order_by("reservation_id", "product_id")
    )
    cutoff = timezone.now() - priority_after()
    orders: dict[int, Waiting] = {}
    for row in rows:
        order = orders.get(row.reservation_id)
        if order is None:
            overdue = row.reservation.created_at <= cutoff
            order = Waiting(row.reservation, {}, {}, overdue, {})
            orders[row.reservation_id] = order
        order.missing[row.product_id] = row.missing
        order.rows[row.product_id] = row
    return list(orders.values())


def serve(
    levels: movements.Levels,
    product_ids: Collection[int],
    *,
    causation: Envelope | None = None,
) -> list[str]:
    """Serve the waiting lists of ``product_ids`` (their stock just grew) with the locked
    ``levels``, which must hold every product of the orders waiting on them (see
    :func:`products_to_lock`). Returns the ids of the orders it completed."""
    locked = {pid for pid, _ in levels}
    ready: list[Waiting] = []
    woken: set[int] = set()
    for order in waiting_on(product_ids):
        if set(order.missing) <= locked:
            ready.append(order)
        else:
            woken.update(pid for pid in order.missing if pid in product_ids)
    if woken:
        wake(woken)
    left = movements.offers(levels)
    for order in ready:  # the overdue first: each takes what it can and keeps it
        if order.overdue:
            _take(order, left, take_available(order.missing, left))
    for order in ready:  # then each of the others if the stock completes it, else nothing
        if not order.overdue and all(
            left[pid].available >= units for pid, units in order.missing.items()
        ):
            _take(order, left, take_available(order.missing, left))
    completed = [order for order in ready if order.taken and order.complete]
    for order in (order for order in ready if order.taken):
        _write(levels, order, causation)
        crash_points.reach(crash_points.BACKORDER_MID_SERVE)  # tests only: kill -9 mid-pass
    return [str(order.reservation.order_id) for order in completed]


def _take(order: Waiting, left: dict[int, Offer], taken: Mapping[Key, int]) -> None:
    for (pid, warehouse_id), units in taken.items():
        left[pid] = left[pid].taken(warehouse_id, units)
        order.missing[pid] -= units
        order.taken[pid, warehouse_id] = order.taken.get((pid, warehouse_id), 0) + units


def _write(levels: movements.Levels, order: Waiting, causation: Envelope | None) -> None:
    """What one order took: counters and ledger, its allocations, its waiting rows; and, once
    complete, the reservation RESERVED and ``stock.reserved``."""
    reservation = order.reservation
    order_id = str(reservation.order_id)
    movements.apply(
        levels,
        {key: (0, units) for key, units in sorted(order.taken.items())},
        kind=StockLedgerEntry.Kind.RESERVE,
        reason="reserved for a backordered order",
        order_id=order_id,
    )
    reservation.allocations = merge_allocations(reservation.allocations, order.taken)
    fields = ["allocations", "updated_at"]
    if order.complete:
        reservation.status = Reservation.Status.RESERVED
        fields.append("status")
        Backorder.objects.filter(reservation_id=reservation.pk).delete()
    else:
        rows = []
        for pid, missing in order.missing.items():
            row = order.rows[pid]
            if missing != row.missing:
                row.missing = missing
                rows.append(row)
        gone = [order.rows[pid].pk for pid, missing in order.missing.items() if missing == 0]
        Backorder.objects.filter(pk__in=gone).delete()
        Backorder.objects.bulk_update([r for r in rows if r.missing > 0], ["missing"])
    reservation.save(update_fields=fields)
    if order.complete:
        data = {
            "order_id": order_id,
            "lines": reservation.lines,
            # Its units of products it never waited on are held in rows this pass did not lock.
            "allocations": event_allocations(warehouse_codes(), reservation.allocations),
        }
        publish_event("stock.reserved", data, correlation_id=order_id, causation=causation)
        logger.info("backordered order %s is complete: reserved", order_id)
    else:
        logger.info("backordered order %s took %s, still waits", order_id, order.taken)


def merge_allocations(
    allocations: list[dict[str, int]], taken: Mapping[Key, int]
) -> list[dict[str, int]]:
    """``allocations`` with ``taken`` added, in (product id, warehouse id) order."""
    merged = {(int(a["product_id"]), int(a["warehouse_id"])): dict(a) for a in allocations}
    for (pid, wid), units in taken.items():
        entry = merged.setdefault(
            (pid, wid), {"product_id": pid, "warehouse_id": wid, "quantity": 0}
        )
        entry["quantity"] = int(entry["quantity"]) + units
    return [merged[key] for key in sorted(merged)]


def warehouse_codes(levels: movements.Levels | None = None) -> dict[int, str]:
    """Warehouse codes by id: those of the locked ``levels`` (no query), else all of them."""
    if levels is not None:
        return {level.warehouse_id: level.warehouse_code for level in levels.values()}
    return dict(Warehouse.objects.values_list("id", "code"))


def event_allocations(
    codes: Mapping[int, str], allocations: Iterable[Mapping[str, int]]
) -> list[dict[str, Any]]:
    """Allocations as events name them: by warehouse code."""
    return [
        {
            "product_id": int(a["product_id"]),
            "warehouse": codes[int(a["warehouse_id"])],
            "quantity": int(a["quantity"]),
        }
        for a in allocations
        if int(a["quantity"]) > 0
    ]


def wake(product_ids: Iterable[int]) -> None:
    """Mark these products' waiting lists for another pass by the worker."""
    BackorderWake.objects.bulk_create(
        [BackorderWake(product_id=pid) for pid in sorted(set(product_ids))], ignore_conflicts=True
    )
    logger.info("waiting lists of products %s left for another pass", sorted(set(product_ids)))


@transaction.atomic
def backorders_serve(*, product_ids: Iterable[int]) -> list[str]:
    """A pass of its own over these products' waiting lists (the worker's); returns the ids of
    the orders it completed."""
    ids = set(product_ids)
    BackorderWake.objects.filter(product_id__in=ids).delete()  # a pass now serves them
    levels = lock_for_increase(ids)
    return serve(levels, ids)


def products_needing_a_pass(now: datetime | None = None) -> list[int]:
    """Products marked for another pass, and those with an overdue waiting order while some of
    their stock is available in an active warehouse (it may start taking it)."""
    cutoff = (now or timezone.now()) - priority_after()
    available = StockLevel.objects.filter(
        product_id=OuterRef("product_id"), warehouse__active=True, on_hand__gt=F("reserved")
    )
    overdue = (
        Backorder.objects.filter(reservation__created_at__lte=cutoff)
        .filter(Exists(available))
        .values_list("product_id", flat=True)
        .distinct()
    )
    woken = BackorderWake.objects.values_list("product_id", flat=True)
    return sorted(set(woken) | set(overdue))


def backorders_pass() -> int:
    """Serve every product that needs a pass, each in its own transaction; returns how many
    orders were completed."""
    completed = 0
    for product_id in products_needing_a_pass():
        completed += len(backorders_serve(product_ids=[product_id]))
    return completed


class BackorderJob(Job):
    """The inventory worker's clock for backorders: every ``INVENTORY_BACKORDER_SCAN_SECONDS``,
    serves the waiting lists a pass left (:class:`stock.models.BackorderWake`) and those with
    an overdue order while stock is available. Several workers may run it: the level locks
    order their passes and a pass acts only on what it reads under them."""

    name = "backorders"
    log = logger
    start_line = "backorders: scanning every {poll_seconds:g}s"
    stop_line = "backorders stopped after completing {completed} orders"

    def __init__(self, *, interval: float | None = None) -> None:
        super().__init__()
        scan = settings.INVENTORY_BACKORDER_SCAN_SECONDS
        self.poll_seconds = scan if interval is None else interval
        self.completed = 0

    def work(self) -> bool:
        self._database.before_work()
        completed = backorders_pass()
        self._database.answered()
        if completed:
            logger.info("completed %d backordered orders", completed)
        self.completed += completed
        return False
