"""Warehouses: created and changed by staff, never deleted (stock, ledger and reservations name
them). Deactivating one keeps its stock and the reservations it holds; nothing new is
allocated from it."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from errors import ErrorCode
from service_runtime.errors import refused
from stock.models import DEFAULT_WAREHOUSE_CODE, Warehouse

WAREHOUSE_FIELDS = ("name", "priority", "active")


def warehouse_default() -> Warehouse:
    """Where a new product's counters are and adjustments naming no warehouse go. A migration
    creates it; it is made again if missing (a database emptied by hand, or by tests)."""
    warehouse, _ = Warehouse.objects.get_or_create(
        code=DEFAULT_WAREHOUSE_CODE, defaults={"name": "Default warehouse", "priority": 0}
    )
    return warehouse


def warehouse_named(code: str | None, *, field: str) -> Warehouse:
    """The warehouse of this code (the default one for None); a 400 on ``field`` if unknown."""
    if code is None:
        return warehouse_default()
    warehouse = Warehouse.objects.filter(code=code).first()
    if warehouse is None:
        message = f"no warehouse has the code {code!r}."
        raise refused(message, code=ErrorCode.WAREHOUSE_UNKNOWN, field=field)
    return warehouse


@transaction.atomic
def warehouse_create(*, code: str, name: str, priority: int = 0, active: bool = True) -> Warehouse:
    try:
        with transaction.atomic():  # the unique code decides, even between two at once
            return Warehouse.objects.create(code=code, name=name, priority=priority, active=active)
    except IntegrityError:
        message = f"a warehouse with the code {code!r} already exists."
        raise refused(message, code=ErrorCode.WAREHOUSE_CODE_TAKEN, field="code") from None


@transaction.atomic
def warehouse_update(*, warehouse: Warehouse, data: dict[str, Any]) -> Warehouse:
    """Change its name, priority or active flag; its code names it for good."""
    warehouse = Warehouse.objects.select_for_update().get(pk=warehouse.pk)
    if "code" in data and data["code"] != warehouse.code:
        message = "a warehouse's code cannot be changed; create another warehouse instead."
        raise refused(message, code=ErrorCode.WAREHOUSE_CODE_IMMUTABLE, field="code")
    changed = [f for f in WAREHOUSE_FIELDS if f in data and getattr(warehouse, f) != data[f]]
    if changed:
        for field in changed:
            setattr(warehouse, field, data[field])
        warehouse.save(update_fields=[*changed, "updated_at"])
    return warehouse
