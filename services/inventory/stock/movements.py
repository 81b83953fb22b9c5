"""How stock moves: locked counters and one ledger entry per change.

Rows of ``StockLevel`` (one per product and warehouse) are always locked in (product id,
warehouse id) order, whoever locks them, so two transactions can never wait on each other in
a cycle. A row that may not exist yet (a product's first units in a warehouse) is created
before any row is locked, never while holding a lock.

On PostgreSQL the moves are a few hand-written statements with a fixed text whatever the number
of products and orders (arrays, not one placeholder per value), so psycopg converts each once
and no ORM query is built per message: one ``SELECT ... FOR UPDATE`` of the
levels, then one statement that updates every counter and writes every ledger row (and, for
orders, their reservations: one order alone or a consumer's whole batch). Other databases
(SQLite on a laptop) take the equivalent ORM path. Either way the CHECK constraints of
``StockLevel`` remain the last line of defence against overselling.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.apps import apps
from django.db import connection
from django.db.models import F
from django.utils import timezone

from service_runtime import statements
from stock.availability import Key, Offer, Shelf
from stock.models import Reservation, StockLedgerEntry, StockLevel, Warehouse

# (product id, warehouse id) -> (change of on_hand, change of reserved)
Deltas = Mapping[Key, tuple[int, int]]

_LEVELS = StockLevel._meta.db_table
_WAREHOUSES = Warehouse._meta.db_table
# The product's table by its model's label, as in stock.models: stock never imports the catalogue.
_PRODUCTS = apps.get_model("catalogue.Product")._meta.db_table
_LEDGER = StockLedgerEntry._meta.db_table
_RESERVATIONS = Reservation._meta.db_table

# Every warehouse's row of these products (the warehouse's state beside it, unlocked: a
# warehouse deactivated meanwhile only stops the allocations that start after it).
_LOCK_SQL = (
    "SELECT s.product_id, s.warehouse_id, s.on_hand, s.reserved,"  # noqa: S608 (table names)
    " p.active, p.sku, p.name, p.low_stock_threshold, w.active, w.priority, w.code,"
    " p.allow_backorder"
    f" FROM {_LEVELS} AS s JOIN {_PRODUCTS} AS p ON p.id = s.product_id"
    f" JOIN {_WAREHOUSES} AS w ON w.id = s.warehouse_id"
    " WHERE s.product_id = ANY(%s::bigint[])"
    " ORDER BY s.product_id, s.warehouse_id"
    " FOR UPDATE OF s"
)

# Adds each row's deltas to its (already locked) counters, and one ledger row for each.
_APPLY_SQL = (
    "WITH moved AS ("  # noqa: S608 (table names, not input)
    f" UPDATE {_LEVELS} AS s"
    " SET on_hand = s.on_hand + d.on_hand, reserved = s.reserved + d.reserved"
    " FROM unnest(%s::bigint[], %s::bigint[], %s::integer[], %s::integer[])"
    " WITH ORDINALITY AS d (product_id, warehouse_id, on_hand, reserved, position)"
    " WHERE s.product_id = d.product_id AND s.warehouse_id = d.warehouse_id"
    " RETURNING d.product_id, d.warehouse_id, d.on_hand, d.reserved, d.position"
    f") INSERT INTO {_LEDGER} (product_id, warehouse_id, kind, delta_on_hand, delta_reserved,"
    " reason, order_id, actor_id, created_at)"
    " SELECT product_id, warehouse_id, %s, on_hand, reserved, %s, %s::uuid, %s::bigint, %s"
    " FROM moved ORDER BY position"
    " RETURNING id, product_id, warehouse_id"
)

# The reservations of several orders, and for those reserved their counters and ledger, in one
# statement. The unique order_id decides: an order that already has a reservation gets no new
# one, so its allocations are left out of ``wanted`` and nothing of it moves. Ids follow the
# orders' order, and their ledger rows too (one per product and warehouse an order takes from).
_RESERVE_SQL = (
    f"WITH reservation AS (INSERT INTO {_RESERVATIONS}"  # noqa: S608 (table names, not input)
    " (order_id, user_id, status, lines, allocations, reason, created_at, updated_at)"
    " SELECT (r.x ->> 0)::uuid, (r.x ->> 1)::bigint, r.x ->> 2, r.x -> 3, r.x -> 4, r.x ->> 5,"
    " %(now)s, %(now)s"
    " FROM jsonb_array_elements(%(reservations)s::jsonb) WITH ORDINALITY AS r (x, position)"
    " ORDER BY r.position"
    " ON CONFLICT (order_id) DO NOTHING"
    " RETURNING id, order_id),"
    " wanted AS (SELECT w.order_id, w.product_id, w.warehouse_id, w.quantity, w.position"
    " FROM (SELECT (x ->> 0)::uuid AS order_id, (x ->> 1)::bigint AS product_id,"
    " (x ->> 2)::bigint AS warehouse_id, (x ->> 3)::integer AS quantity, position"
    " FROM jsonb_array_elements(%(wanted)s::jsonb) WITH ORDINALITY AS e (x, position)) AS w"
    " JOIN reservation ON reservation.order_id = w.order_id),"
    f" moved AS (UPDATE {_LEVELS} AS s SET reserved = s.reserved + t.quantity"
    " FROM (SELECT product_id, warehouse_id, sum(quantity)::integer AS quantity FROM wanted"
    " GROUP BY product_id, warehouse_id) AS t"
    " WHERE s.product_id = t.product_id AND s.warehouse_id = t.warehouse_id),"
    f" ledger AS (INSERT INTO {_LEDGER} (product_id, warehouse_id, kind, delta_on_hand,"
    " delta_reserved, reason, order_id, actor_id, created_at)"
    " SELECT product_id, warehouse_id, %(kind)s, 0, quantity, %(reason)s, order_id, NULL,"
    " %(now)s FROM wanted ORDER BY position)"
    " SELECT id, order_id FROM reservation"
)

# The columns, in this order, of the model instances built from what these statements wrote.
_RESERVATION_FIELDS = [
    "id",
    "order_id",
    "user_id",
    "status",
    "lines",
    "allocations",
    "reason",
    "shipment_ids",
    "created_at",
    "updated_at",
]
_LEDGER_FIELDS = [
    "id",
    "product_id",
    "warehouse_id",
    "kind",
    "delta_on_hand",
    "delta_reserved",
    "reason",
    "order_id",
    "actor_id",
    "created_at",
]


@dataclass(slots=True)
class Level:
    """One locked ``StockLevel`` row, what moving its stock needs to know of its product, and
    where its warehouse stands."""

    product_id: int
    warehouse_id: int
    on_hand: int
    reserved: int
    active: bool  # the product's
    sku: str
    name: str
    low_stock_threshold: int
    warehouse_active: bool
    priority: int
    warehouse_code: str  # what events name the warehouse by
    allow_backorder: bool = False  # the product's

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    @property
    def key(self) -> Key:
        return self.product_id, self.warehouse_id


Levels = Mapping[Key, Level]


def _hand_written_sql() -> bool:
    """Whether the statements of this module suit the database (PostgreSQL); else the ORM."""
    return connection.vendor == "postgresql"


def ensure_levels(keys: Iterable[Key]) -> None:
    """Create, at zero, the rows of these (product, warehouse) pairs that do not exist yet.

    Called before any row is locked: a row created while holding another row's lock could wait
    on a transaction creating the same row that waits for that lock. The products must exist.
    """
    StockLevel.objects.bulk_create(
        [StockLevel(product_id=pid, warehouse_id=wid) for pid, wid in sorted(set(keys))],
        ignore_conflicts=True,
    )


def lock_levels(product_ids: Iterable[int]) -> dict[Key, Level]:
    """Lock every warehouse's row of these products, in (product id, warehouse id) order;
    unknown products are left out."""
    ids = sorted(set(product_ids))
    if _hand_written_sql():
        rows: Iterable[tuple[Any, ...]] = statements.execute(_LOCK_SQL, [ids], prepared=True)
    else:
        rows = (
            StockLevel.objects.select_for_update(of=("self",))
            .filter(product_id__in=ids)
            .order_by("product_id", "warehouse_id")
            .values_list(
                "product_id",
                "warehouse_id",
                "on_hand",
                "reserved",
                "product__active",
                "product__sku",
                "product__name",
                "product__low_stock_threshold",
                "warehouse__active",
                "warehouse__priority",
                "warehouse__code",
                "product__allow_backorder",
            )
        )
    levels = (Level(*row) for row in rows)
    return {level.key: level for level in levels}


def products(levels: Levels) -> dict[int, Level]:
    """One locked row of each product, for what they share: the product's own fields."""
    return {level.product_id: level for level in levels.values()}


def offers(levels: Levels) -> dict[int, Offer]:
    """What can be sold of each product of the locked rows, warehouse by warehouse."""
    found: dict[int, Offer] = {}
    for level in levels.values():
        offer = found.get(level.product_id) or Offer(level.active, (), level.allow_backorder)
        shelf = Shelf(level.warehouse_id, level.available, level.priority, level.warehouse_active)
        found[level.product_id] = offer._replace(shelves=(*offer.shelves, shelf))
    return found


def apply(
    levels: Levels,
    deltas: Deltas,
    *,
    kind: str,
    reason: str,
    order_id: str | None = None,
    actor_id: int | None = None,
) -> list[StockLedgerEntry]:
    """Apply ``deltas`` to locked levels and write a ledger entry per row, in one go; the
    entries come back in the order of ``deltas``."""
    now = timezone.now()
    if _hand_written_sql():
        with connection.cursor() as cursor:
            cursor.execute(
                _APPLY_SQL,
                [*_delta_arrays(deltas), kind, reason, order_id, actor_id, now],
            )
            ids = {(pid, wid): pk for pk, pid, wid in cursor.fetchall()}
        entries = [
            StockLedgerEntry.from_db(
                connection.alias,
                _LEDGER_FIELDS,
                [ids[pid, wid], pid, wid, kind, on_hand, reserved, reason, order_id, actor_id, now],
            )
            for (pid, wid), (on_hand, reserved) in deltas.items()
        ]
    else:
        for (pid, wid), (on_hand, reserved) in deltas.items():
            StockLevel.objects.filter(product_id=pid, warehouse_id=wid).update(
                on_hand=F("on_hand") + on_hand, reserved=F("reserved") + reserved
            )
        entries = StockLedgerEntry.objects.bulk_create(
            StockLedgerEntry(
                product_id=pid,
                warehouse_id=wid,
                delta_on_hand=on_hand,
                delta_reserved=reserved,
                kind=kind,
                reason=reason,
                order_id=order_id,
                actor_id=actor_id,
            )
            for (pid, wid), (on_hand, reserved) in deltas.items()
        )
    _moved(levels, deltas)
    return entries


@dataclass(frozen=True, slots=True)
class Decision:
    """What to write for one order: the reservation of ``wanted``, taking ``taken`` from each
    warehouse, or its rejection; backordered when it takes ``taken`` and waits for
    ``waiting``."""

    order_id: str
    user_id: int
    wanted: Mapping[int, int]
    taken: Mapping[Key, int] = field(default_factory=dict)  # units per (product, warehouse)
    rejection: str | None = None  # why it is rejected; None: reserve ``wanted``
    waiting: Mapping[int, int] = field(default_factory=dict)  # units missing per product

    @property
    def status(self) -> str:
        if self.rejection is not None:
            return Reservation.Status.REJECTED
        if self.waiting:
            return Reservation.Status.BACKORDERED
        return Reservation.Status.RESERVED


def reserve(levels: Levels, decisions: Sequence[Decision]) -> dict[str, Reservation]:
    """Write each order's reservation or rejection, and move the locked levels it reserves.

    Returns what was written, by order id. An order that already has a reservation (of any
    status) is left out, with nothing of it written or moved.
    """
    now = timezone.now()
    kind, reason = StockLedgerEntry.Kind.RESERVE, "reserved for an order"
    if not _hand_written_sql():
        return _reserve_portable(levels, decisions, kind=kind, reason=reason)
    reserving = [d for d in decisions if d.rejection is None]
    rows = statements.execute(
        _RESERVE_SQL,
        {
            "now": now,
            # The rows as two JSON parameters: psycopg dumps a list parameter element by
            # element in Python, which cost more than the statement's own work in a large
            # batch (reports/bench-changes.md).
            "reservations": json.dumps(
                [
                    [
                        d.order_id,
                        d.user_id,
                        d.status,
                        as_lines(d.wanted),
                        as_allocations(d.taken),
                        d.rejection or "",
                    ]
                    for d in decisions
                ]
            ),
            "wanted": json.dumps(
                [
                    [d.order_id, pid, wid, quantity]
                    for d in reserving
                    for (pid, wid), quantity in d.taken.items()
                ]
            ),
            "kind": kind,
            "reason": reason,
        },
        prepared=True,
    )
    ids = {order_id: pk for pk, order_id in rows}
    written: dict[str, Reservation] = {}
    for d in decisions:
        pk = ids.get(uuid.UUID(d.order_id))
        if pk is None:
            continue
        if d.rejection is None:
            _moved(levels, {key: (0, quantity) for key, quantity in d.taken.items()})
        written[d.order_id] = _reservation(pk, d, now)
    return written


def _reserve_portable(
    levels: Levels, decisions: Sequence[Decision], *, kind: str, reason: str
) -> dict[str, Reservation]:
    """The same with the ORM, order by order."""
    written: dict[str, Reservation] = {}
    for d in decisions:
        if Reservation.objects.filter(order_id=d.order_id).exists():
            continue
        if d.rejection is None:
            deltas = {key: (0, quantity) for key, quantity in d.taken.items()}
            apply(levels, deltas, kind=kind, reason=reason, order_id=d.order_id)
        written[d.order_id] = Reservation.objects.create(
            order_id=d.order_id,
            user_id=d.user_id,
            status=d.status,
            lines=as_lines(d.wanted),
            allocations=as_allocations(d.taken),
            reason=d.rejection or "",
        )
    return written


def as_lines(wanted: Mapping[int, int]) -> list[dict[str, int]]:
    """Quantities per product as the lines of a reservation and of its events."""
    return [{"product_id": pid, "quantity": quantity} for pid, quantity in wanted.items()]


def as_allocations(taken: Mapping[Key, int]) -> list[dict[str, int]]:
    """Units per (product, warehouse) as the allocations of a reservation."""
    return [
        {"product_id": pid, "warehouse_id": wid, "quantity": quantity}
        for (pid, wid), quantity in taken.items()
    ]


def _delta_arrays(deltas: Deltas) -> list[list[int]]:
    """The product ids, warehouse ids, on_hand and reserved changes of ``deltas``: 4 arrays."""
    return [
        [pid for pid, _ in deltas],
        [wid for _, wid in deltas],
        [on_hand for on_hand, _ in deltas.values()],
        [reserved for _, reserved in deltas.values()],
    ]


def _moved(levels: Levels, deltas: Deltas) -> None:
    """Bring the locked levels in memory up to date with what the database now holds."""
    for key, (on_hand, reserved) in deltas.items():
        level = levels[key]
        level.on_hand += on_hand
        level.reserved += reserved


def _reservation(pk: int, decision: Decision, now: datetime) -> Reservation:
    """The model instance of a reservation just inserted by hand, as if loaded from the database."""
    values = [
        pk,
        decision.order_id,
        decision.user_id,
        decision.status,
        as_lines(decision.wanted),
        as_allocations(decision.taken),
        decision.rejection or "",
        [],
        now,
        now,
    ]
    return Reservation.from_db(connection.alias, _RESERVATION_FIELDS, values)
