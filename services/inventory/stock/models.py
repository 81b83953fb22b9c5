from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, NoReturn

from django.db import models
from django.db.models import F, Q

# The code of the warehouse that a migration created for the stock kept before there were
# several, where a new product's counters are and adjustments naming no warehouse go.
DEFAULT_WAREHOUSE_CODE = "default"


class Warehouse(models.Model):
    """A place that holds stock. Never deleted: its stock, ledger and reservations name it.

    Orders are allocated from active warehouses only, the highest ``priority`` first (ties: the
    lowest id); an inactive one keeps its stock and the reservations it already holds.
    """

    code: models.SlugField[str, str] = models.SlugField(max_length=32, unique=True)
    name: models.CharField[str, str] = models.CharField(max_length=100)
    active: models.BooleanField[bool, bool] = models.BooleanField(default=True)
    priority: models.IntegerField[int, int] = models.IntegerField(default=0)
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now_add=True)
    updated_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-priority", "id"]

    def __str__(self) -> str:
        return self.code


class StockLevel(models.Model):
    """The counters of one product in one warehouse; the database refuses any state that would
    oversell. A product's totals are the sums of its rows."""

    # The catalogue's product, named by its label: stock works with product ids and never
    # imports the catalogue, which builds on it (``catalogue`` -> ``stock``, one way).
    # No index of its own: the unique (product, warehouse) one serves it.
    product: models.ForeignKey[models.Model, models.Model] = models.ForeignKey(
        "catalogue.Product", on_delete=models.PROTECT, related_name="stock_levels", db_index=False
    )
    product_id: int
    warehouse: models.ForeignKey[Warehouse, Warehouse] = models.ForeignKey(
        Warehouse, on_delete=models.PROTECT, related_name="stock_levels"
    )
    warehouse_id: int
    on_hand: models.IntegerField[int, int] = models.IntegerField(default=0)
    reserved: models.IntegerField[int, int] = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["product", "warehouse"], name="stock_one_level_per_warehouse"
            ),
            models.CheckConstraint(condition=Q(on_hand__gte=0), name="stock_on_hand_not_negative"),
            models.CheckConstraint(
                condition=Q(reserved__gte=0), name="stock_reserved_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(reserved__lte=F("on_hand")), name="stock_reserved_within_on_hand"
            ),
        ]

    def __str__(self) -> str:
        return (
            f"product {self.product_id} in warehouse {self.warehouse_id}: "
            f"{self.on_hand} on hand, {self.reserved} reserved"
        )

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class AppendOnly(Exception):
    """The stock ledger is history: entries are added, never changed or removed."""


class StockLedgerQuerySet(models.QuerySet["StockLedgerEntry"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnly("stock ledger entries cannot be updated")

    def delete(self) -> NoReturn:
        raise AppendOnly("stock ledger entries cannot be deleted")


class StockLedgerEntry(models.Model):
    class Kind(models.TextChoices):
        ADJUSTMENT = "adjustment"
        RESERVE = "reserve"
        RELEASE = "release"
        SHIP = "ship"
        # One entry out of the source warehouse (negative), one into the destination.
        TRANSFER = "transfer"
        # Returned units back on hand; damaged returned units, written off (no stock change).
        RETURN = "return"
        WRITE_OFF = "write_off"

    product: models.ForeignKey[models.Model, models.Model] = models.ForeignKey(
        "catalogue.Product", on_delete=models.PROTECT, related_name="stock_ledger"
    )
    product_id: int
    # Read by product (and warehouse): ``ledger_by_warehouse``. An index of the warehouse alone
    # would tempt PostgreSQL to read a whole warehouse's ledger to sort a product's.
    warehouse: models.ForeignKey[Warehouse, Warehouse] = models.ForeignKey(
        Warehouse, on_delete=models.PROTECT, related_name="stock_ledger", db_index=False
    )
    warehouse_id: int
    kind: models.CharField[str, str] = models.CharField(max_length=20, choices=Kind.choices)
    delta_on_hand: models.IntegerField[int, int] = models.IntegerField(default=0)
    delta_reserved: models.IntegerField[int, int] = models.IntegerField(default=0)
    reason: models.CharField[str, str] = models.CharField(max_length=500)
    order_id: models.UUIDField[uuid.UUID | str | None, uuid.UUID | None] = models.UUIDField(
        null=True, blank=True, db_index=True
    )
    # The staff user who adjusted; None for moves caused by orders.
    actor_id: models.BigIntegerField[int | None, int | None] = models.BigIntegerField(
        null=True, blank=True
    )
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now_add=True)

    objects = StockLedgerQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["product", "-id"], name="ledger_by_product"),
            models.Index(fields=["product", "warehouse", "-id"], name="ledger_by_warehouse"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.kind} product {self.product_id} warehouse {self.warehouse_id} "
            f"{self.delta_on_hand:+}/{self.delta_reserved:+}"
        )

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnly("stock ledger entries cannot be updated")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnly("stock ledger entries cannot be deleted")


class Reservation(models.Model):
    """What inventory did for one order; a CANCELLED row with no lines is a tombstone."""

    class Status(models.TextChoices):
        RESERVED = "RESERVED"
        # Some of its units shipped, the others still held.
        PARTIALLY_SHIPPED = "PARTIALLY_SHIPPED"
        REJECTED = "REJECTED"
        # Short of products that allow backorders: it holds what there was and waits for the
        # rest (its ``Backorder`` rows), then becomes RESERVED.
        BACKORDERED = "BACKORDERED"
        RELEASED = "RELEASED"
        SHIPPED = "SHIPPED"
        CANCELLED = "CANCELLED"

    order_id: models.UUIDField[uuid.UUID | str, uuid.UUID] = models.UUIDField(unique=True)
    user_id: models.BigIntegerField[int | None, int | None] = models.BigIntegerField(
        null=True, blank=True
    )
    status: models.CharField[str, str] = models.CharField(max_length=20, choices=Status.choices)
    # [{"product_id": 1, "quantity": 2}, ...] in product id order
    lines: models.JSONField[list[dict[str, int]], list[dict[str, int]]] = models.JSONField(
        default=list
    )
    # Where the units of ``lines`` are held (a BACKORDERED one: what it holds so far):
    # [{"product_id": 1, "warehouse_id": 2, "quantity": 2, "shipped": 1}, ...] in (product id,
    # warehouse id) order; what release and shipment give back, warehouse by warehouse.
    # ``shipped`` (absent: 0) counts the units of the entry that have left. Empty unless the
    # order was reserved (or backordered).
    allocations: models.JSONField[list[dict[str, int]], list[dict[str, int]]] = models.JSONField(
        default=list
    )
    # The ids of the shipments (order.shipped v2) already turned into stock leaving: the same
    # shipment delivered again, under another message id, ships nothing more.
    shipment_ids: models.JSONField[list[int], list[int]] = models.JSONField(
        default=list, db_default=[]
    )
    reason: models.TextField[str, str] = models.TextField(blank=True, default="")
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now_add=True)
    updated_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        # The staff list by status, newest first (the cross-service audit reads the active ones).
        indexes = [models.Index(fields=["status", "-id"], name="reservation_status_newest")]

    def __str__(self) -> str:
        return f"reservation {self.order_id} {self.status}"

    def quantities(self) -> dict[int, int]:
        return {int(line["product_id"]): int(line["quantity"]) for line in self.lines}

    def held(self) -> dict[tuple[int, int], int]:
        """Units held and not shipped yet per (product id, warehouse id)."""
        return unshipped(self.allocations)

    @property
    def active(self) -> bool:
        """Whether it still holds units for its order (reserved, maybe partly shipped)."""
        return self.status in (self.Status.RESERVED, self.Status.PARTIALLY_SHIPPED)


class Backorder(models.Model):
    """Units of one product a BACKORDERED reservation still misses: its place in that
    product's waiting list. Arrival order is the reservation's id, waiting since its creation;
    the row goes when the order is complete or cancelled."""

    reservation: models.ForeignKey[Reservation, Reservation] = models.ForeignKey(
        Reservation, on_delete=models.CASCADE, related_name="backorders", db_index=False
    )
    reservation_id: int
    # No index of its own: ``backorder_by_product`` serves it.
    product: models.ForeignKey[models.Model, models.Model] = models.ForeignKey(
        "catalogue.Product", on_delete=models.PROTECT, related_name="backorders", db_index=False
    )
    product_id: int
    missing: models.PositiveIntegerField[int, int] = models.PositiveIntegerField()

    class Meta:
        ordering = ["reservation_id", "product_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["reservation", "product"], name="backorder_one_row_per_product"
            ),
            models.CheckConstraint(condition=Q(missing__gte=1), name="backorder_missing_positive"),
        ]
        indexes = [models.Index(fields=["product", "reservation"], name="backorder_by_product")]

    def __str__(self) -> str:
        return f"reservation {self.reservation_id} misses {self.missing} of {self.product_id}"


class BackorderWake(models.Model):
    """A product whose waiting list needs another pass: a pass met a waiting order naming a
    product it had not locked. The inventory worker's backorder job serves it and deletes it."""

    product_id: models.BigIntegerField[int, int] = models.BigIntegerField(unique=True)
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"wake product {self.product_id}"


class ReturnReceipt(models.Model):
    """A return (by its id in the orders service) whose received units are already on hand:
    the same return delivered again, under another message id, moves nothing."""

    return_id: models.BigIntegerField[int, int] = models.BigIntegerField(unique=True)
    order_id: models.UUIDField[uuid.UUID | str, uuid.UUID] = models.UUIDField()
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"return {self.return_id} of order {self.order_id}"


def unshipped(allocations: list[dict[str, int]]) -> dict[tuple[int, int], int]:
    """Units of these allocations held and not shipped yet, per (product id, warehouse id);
    the entries with nothing left are left out."""
    left = {
        (int(a["product_id"]), int(a["warehouse_id"])): int(a["quantity"])
        - int(a.get("shipped", 0))
        for a in allocations
    }
    return {key: units for key, units in left.items() if units > 0}
