from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from django.db.models import F, IntegerField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from stock.backorders import priority_after
from stock.models import (
    Backorder,
    Reservation,
    StockLedgerEntry,
    StockLevel,
    Warehouse,
    unshipped,
)


def warehouse_list() -> QuerySet[Warehouse]:
    """In allocation order: the highest priority first, then the oldest."""
    return Warehouse.objects.order_by("-priority", "id")


def stock_ledger_list(
    *, product_id: int, warehouse_id: int | None = None
) -> QuerySet[StockLedgerEntry]:
    entries = StockLedgerEntry.objects.filter(product_id=product_id)
    if warehouse_id is not None:
        entries = entries.filter(warehouse_id=warehouse_id)
    return entries.select_related("warehouse").order_by("-id")


class LedgerRow(NamedTuple):
    """A ledger entry as the API shows it, its warehouse named by its code."""

    id: int
    product_id: int
    warehouse_id: int
    warehouse: str
    kind: str
    delta_on_hand: int
    delta_reserved: int
    reason: str
    order_id: uuid.UUID | None
    actor_id: int | None
    created_at: datetime


_LEDGER_LOOKUPS = tuple({"warehouse": "warehouse__code"}.get(n, n) for n in LedgerRow._fields)


def stock_ledger_page(entries: QuerySet[StockLedgerEntry]) -> list[LedgerRow]:
    """A page of ``stock_ledger_list`` (ordered and sliced) as tuples, read in one statement
    with each entry's warehouse code: model instances and their warehouses' were most of the
    list's CPU."""
    rows: QuerySet[Any, tuple[Any, ...]] = entries.values_list(*_LEDGER_LOOKUPS)
    return [LedgerRow._make(row) for row in rows]


def stock_levels_exist(*, product_id: int) -> bool:
    """Whether the product has a row in some warehouse: whether it exists, for stock."""
    return StockLevel.objects.filter(product_id=product_id).exists()


def stock_levels_of(*, product_id: int) -> list[StockLevel]:
    """A product's rows, one per warehouse that holds (or held) some, in allocation order;
    empty for an unknown product."""
    return list(
        StockLevel.objects.filter(product_id=product_id)
        .select_related("warehouse")
        .order_by("-warehouse__priority", "warehouse_id")
    )


@dataclass(frozen=True)
class Totals:
    """A product's stock summed over its warehouses."""

    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    @classmethod
    def of(cls, levels: list[StockLevel]) -> Totals:
        return cls(sum(level.on_hand for level in levels), sum(level.reserved for level in levels))


@dataclass(frozen=True)
class Mismatch:
    product_id: int
    sku: str
    warehouse: str  # its code
    on_hand: int
    ledger_on_hand: int
    reserved: int
    ledger_reserved: int
    held: int  # by the reservations there, not shipped yet

    def __str__(self) -> str:
        return (
            f"product {self.product_id} ({self.sku}): on_hand {self.on_hand} but ledger "
            f"{self.ledger_on_hand}; reserved {self.reserved} but ledger {self.ledger_reserved}"
            f" and {self.held} held by reservations; in warehouse {self.warehouse}"
        )


def stock_ledger_mismatches() -> list[Mismatch]:
    """Every (product, warehouse) row whose counters differ from the sums of its ledger, or
    whose reserved units differ from what the reservations hold there and have not shipped;
    empty when all agree."""
    held = reserved_units()
    rows = (
        StockLevel.objects.annotate(
            sku=F("product__sku"),
            code=F("warehouse__code"),
            ledger_on_hand=_ledger_sum("delta_on_hand"),
            ledger_reserved=_ledger_sum("delta_reserved"),
        )
        .order_by("product_id", "warehouse_id")
        .values_list(
            "product_id",
            "warehouse_id",
            "sku",
            "code",
            "on_hand",
            "ledger_on_hand",
            "reserved",
            "ledger_reserved",
        )
    )
    found = []
    for pid, wid, sku, code, on_hand, ledger_on_hand, reserved, ledger_reserved in rows:
        units = held.get((pid, wid), 0)
        if on_hand != ledger_on_hand or reserved != ledger_reserved or reserved != units:
            found.append(
                Mismatch(pid, sku, code, on_hand, ledger_on_hand, reserved, ledger_reserved, units)
            )
    return found


def reserved_units() -> Counter[tuple[int, int]]:
    """Units held by RESERVED (or partly shipped) reservations and by BACKORDERED ones (what
    they hold so far) and not shipped yet, per (product id, warehouse id)."""
    units: Counter[tuple[int, int]] = Counter()
    statuses = [
        Reservation.Status.RESERVED,
        Reservation.Status.PARTIALLY_SHIPPED,
        Reservation.Status.BACKORDERED,
    ]
    reserved = Reservation.objects.filter(status__in=statuses)
    for allocations in reserved.values_list("allocations", flat=True).iterator(chunk_size=2000):
        units.update(unshipped(allocations))
    return units


def _ledger_sum(field: str) -> Coalesce:
    total = (
        StockLedgerEntry.objects.filter(
            product_id=OuterRef("product_id"), warehouse_id=OuterRef("warehouse_id")
        )
        .order_by()
        .values("product_id", "warehouse_id")
        .annotate(total=Sum(field))
        .values("total")
    )
    return Coalesce(Subquery(total), Value(0), output_field=IntegerField())


@dataclass(frozen=True)
class Place:
    """One order in a product's waiting list."""

    order_id: str
    user_id: int | None
    place: int  # 1-based, in serving order
    quantity: int  # units of the product it still misses
    waiting_since: datetime
    overdue: bool


def backorder_waiting_list(*, product_id: int, now: datetime | None = None) -> list[Place]:
    """A product's waiting orders in the order a pass serves them: those waiting longer than
    ``INVENTORY_BACKORDER_PRIORITY_AFTER_SECONDS`` first, then the others, each in arrival
    order (stock.backorders)."""
    cutoff = (now or timezone.now()) - priority_after()
    rows = (
        Backorder.objects.filter(
            product_id=product_id, reservation__status=Reservation.Status.BACKORDERED
        )
        .order_by("reservation_id")
        .values_list(
            "reservation__order_id", "reservation__user_id", "missing", "reservation__created_at"
        )
    )
    waiting = [(str(o), user, missing, since, since <= cutoff) for o, user, missing, since in rows]
    waiting.sort(key=lambda row: not row[4])  # stable: arrival order within each group
    return [
        Place(o, user, i, missing, since, overdue)
        for i, (o, user, missing, since, overdue) in enumerate(waiting, 1)
    ]


@dataclass(frozen=True)
class OrderBackorder:
    """What an order waits for: per product, the units it misses and its place."""

    order_id: str
    user_id: int | None
    status: str
    lines: list[dict[str, int]]


def backorder_of_order(*, order_id: str) -> OrderBackorder | None:
    """An order's reservation status and its places in the waiting lists (none once it is no
    longer BACKORDERED); None for an order inventory has not seen."""
    reservation = Reservation.objects.filter(order_id=order_id).first()
    if reservation is None:
        return None
    order_id = str(reservation.order_id)
    lines = []
    if reservation.status == Reservation.Status.BACKORDERED:
        for row in Backorder.objects.filter(reservation=reservation).order_by("product_id"):
            places = backorder_waiting_list(product_id=row.product_id)
            place = next(p.place for p in places if p.order_id == order_id)
            lines.append({"product_id": row.product_id, "missing": row.missing, "place": place})
    return OrderBackorder(order_id, reservation.user_id, reservation.status, lines)


def reservation_list(
    *, statuses: list[str] | None = None, order_ids: list[uuid.UUID] | None = None
) -> QuerySet[Reservation]:
    """Reservations for staff (the cross-service audit), newest first: some statuses (index
    ``reservation_status_newest``) and/or some orders (the unique index of ``order_id``)."""
    reservations = Reservation.objects.all()
    if statuses:
        reservations = reservations.filter(status__in=statuses)
    if order_ids:
        reservations = reservations.filter(order_id__in=order_ids)
    return reservations.order_by("-id")
