from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, NoReturn

from django.db import models
from django.db.models import F, Q


class StockLevel(models.Model):
    """The counters of one product; the database refuses any state that would oversell."""

    # The catalogue's product, named by its label: stock works with product ids and never
    # imports the catalogue, which builds on it (``catalogue`` -> ``stock``, one way).
    product: models.OneToOneField[models.Model, models.Model] = models.OneToOneField(
        "catalogue.Product", primary_key=True, on_delete=models.PROTECT, related_name="stock"
    )
    product_id: int
    on_hand: models.IntegerField[int, int] = models.IntegerField(default=0)
    reserved: models.IntegerField[int, int] = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(on_hand__gte=0), name="stock_on_hand_not_negative"),
            models.CheckConstraint(
                condition=Q(reserved__gte=0), name="stock_reserved_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(reserved__lte=F("on_hand")), name="stock_reserved_within_on_hand"
            ),
        ]

    def __str__(self) -> str:
        return f"product {self.product_id}: {self.on_hand} on hand, {self.reserved} reserved"

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

    product: models.ForeignKey[models.Model, models.Model] = models.ForeignKey(
        "catalogue.Product", on_delete=models.PROTECT, related_name="stock_ledger"
    )
    product_id: int
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
        indexes = [models.Index(fields=["product", "-id"], name="ledger_by_product")]

    def __str__(self) -> str:
        return (
            f"{self.kind} product {self.product_id} {self.delta_on_hand:+}/{self.delta_reserved:+}"
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
        REJECTED = "REJECTED"
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
    reason: models.TextField[str, str] = models.TextField(blank=True, default="")
    created_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now_add=True)
    updated_at: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"reservation {self.order_id} {self.status}"

    def quantities(self) -> dict[int, int]:
        return {int(line["product_id"]): int(line["quantity"]) for line in self.lines}
