"""How stock moves: locked counters and one ledger entry per change.

Rows of ``StockLevel`` are always locked in product id order, whoever locks them, so two
transactions can never wait on each other in a cycle.

On PostgreSQL the moves are a few hand-written statements with a fixed text whatever the number
of products and orders (arrays, not one placeholder per value), so psycopg prepares them once
per connection and no ORM query is built per message: one ``SELECT ... FOR UPDATE`` of the
levels, then one statement that updates every counter and writes every ledger row (and, for
orders, their reservations: one order alone or a consumer's whole batch). Other databases
(SQLite on a laptop) take the equivalent ORM path. Either way the CHECK constraints of
``StockLevel`` remain the last line of defence against overselling.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.apps import apps
from django.db import connection
from django.db.models import Case, F, IntegerField, Value, When
from django.utils import timezone

from stock.models import Reservation, StockLedgerEntry, StockLevel

Deltas = Mapping[int, tuple[int, int]]  # product id -> (change of on_hand, change of reserved)

_LEVELS = StockLevel._meta.db_table
# The product's table by its model's label, as in stock.models: stock never imports the catalogue.
_PRODUCTS = apps.get_model("catalogue.Product")._meta.db_table
_LEDGER = StockLedgerEntry._meta.db_table
_RESERVATIONS = Reservation._meta.db_table

_LOCK_SQL = (
    "SELECT s.product_id, s.on_hand, s.reserved,"  # noqa: S608 (table names, not input)
    " p.active, p.sku, p.name, p.low_stock_threshold"
    f" FROM {_LEVELS} AS s JOIN {_PRODUCTS} AS p ON p.id = s.product_id"
    " WHERE s.product_id = ANY(%s::bigint[])"
    " ORDER BY s.product_id"
    " FOR UPDATE OF s"
)

# Adds each product's deltas to its (already locked) counters, and one ledger row for each.
_APPLY_SQL = (
    "WITH moved AS ("  # noqa: S608 (table names, not input)
    f" UPDATE {_LEVELS} AS s"
    " SET on_hand = s.on_hand + d.on_hand, reserved = s.reserved + d.reserved"
    " FROM unnest(%s::bigint[], %s::integer[], %s::integer[]) AS d (product_id, on_hand, reserved)"
    " WHERE s.product_id = d.product_id"
    " RETURNING d.product_id, d.on_hand, d.reserved"
    f") INSERT INTO {_LEDGER}"
    " (product_id, kind, delta_on_hand, delta_reserved, reason, order_id, actor_id, created_at)"
    " SELECT product_id, %s, on_hand, reserved, %s, %s::uuid, %s::bigint, %s FROM moved"
    " RETURNING id, product_id"
)

# The reservations of several orders, and for those reserved their counters and ledger, in one
# statement. The unique order_id decides: an order that already has a reservation gets no new
# one, so its lines are left out of ``wanted`` and nothing of it moves. Ids follow the orders'
# order, and their ledger rows too.
_RESERVE_SQL = (
    f"WITH reservation AS (INSERT INTO {_RESERVATIONS}"  # noqa: S608 (table names, not input)
    " (order_id, user_id, status, lines, reason, created_at, updated_at)"
    " SELECT r.order_id, r.user_id, r.status, r.lines, r.reason, %(now)s, %(now)s"
    " FROM unnest(%(orders)s::uuid[], %(users)s::bigint[], %(statuses)s::text[],"
    " %(lines)s::jsonb[], %(reasons)s::text[])"
    " WITH ORDINALITY AS r (order_id, user_id, status, lines, reason, position)"
    " ORDER BY r.position"
    " ON CONFLICT (order_id) DO NOTHING"
    " RETURNING id, order_id),"
    " wanted AS (SELECT w.order_id, w.product_id, w.quantity, w.position"
    " FROM unnest(%(line_orders)s::uuid[], %(products)s::bigint[], %(quantities)s::integer[])"
    " WITH ORDINALITY AS w (order_id, product_id, quantity, position)"
    " JOIN reservation ON reservation.order_id = w.order_id),"
    f" moved AS (UPDATE {_LEVELS} AS s SET reserved = s.reserved + t.quantity"
    " FROM (SELECT product_id, sum(quantity)::integer AS quantity FROM wanted GROUP BY product_id)"
    " AS t WHERE s.product_id = t.product_id),"
    f" ledger AS (INSERT INTO {_LEDGER}"
    " (product_id, kind, delta_on_hand, delta_reserved, reason, order_id, actor_id, created_at)"
    " SELECT product_id, %(kind)s, 0, quantity, %(reason)s, order_id, NULL, %(now)s"
    " FROM wanted ORDER BY position)"
    " SELECT id, order_id FROM reservation"
)

# The columns, in this order, of the model instances built from what these statements wrote.
_RESERVATION_FIELDS = [
    "id",
    "order_id",
    "user_id",
    "status",
    "lines",
    "reason",
    "created_at",
    "updated_at",
]
_LEDGER_FIELDS = [
    "id",
    "product_id",
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
    """One locked ``StockLevel`` row and what moving its stock needs to know of its product."""

    product_id: int
    on_hand: int
    reserved: int
    active: bool
    sku: str
    name: str
    low_stock_threshold: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


def _hand_written_sql() -> bool:
    """Whether the statements of this module suit the database (PostgreSQL); else the ORM."""
    return connection.vendor == "postgresql"


def lock_levels(product_ids: Iterable[int]) -> dict[int, Level]:
    """Lock the levels of these products, in product id order; unknown products are left out."""
    ids = list(product_ids)
    if _hand_written_sql():
        with connection.cursor() as cursor:
            cursor.execute(_LOCK_SQL, [ids])
            rows: Iterable[tuple[Any, ...]] = cursor.fetchall()
    else:
        rows = (
            StockLevel.objects.select_for_update(of=("self",))
            .filter(product_id__in=ids)
            .order_by("product_id")
            .values_list(
                "product_id",
                "on_hand",
                "reserved",
                "product__active",
                "product__sku",
                "product__name",
                "product__low_stock_threshold",
            )
        )
    return {row[0]: Level(*row) for row in rows}


def apply(
    levels: Mapping[int, Level],
    deltas: Deltas,
    *,
    kind: str,
    reason: str,
    order_id: str | None = None,
    actor_id: int | None = None,
) -> list[StockLedgerEntry]:
    """Apply ``deltas`` to locked levels and write a ledger entry per product, in one go."""
    now = timezone.now()
    if _hand_written_sql():
        with connection.cursor() as cursor:
            cursor.execute(
                _APPLY_SQL,
                [*_delta_arrays(deltas), kind, reason, order_id, actor_id, now],
            )
            ids = {product_id: pk for pk, product_id in cursor.fetchall()}
        entries = [
            StockLedgerEntry.from_db(
                connection.alias,
                _LEDGER_FIELDS,
                [ids[pid], pid, kind, on_hand, reserved, reason, order_id, actor_id, now],
            )
            for pid, (on_hand, reserved) in deltas.items()
        ]
    else:
        StockLevel.objects.filter(product_id__in=list(deltas)).update(
            on_hand=F("on_hand") + _per_product(deltas, 0),
            reserved=F("reserved") + _per_product(deltas, 1),
        )
        entries = StockLedgerEntry.objects.bulk_create(
            StockLedgerEntry(
                product_id=pid,
                delta_on_hand=on_hand,
                delta_reserved=reserved,
                kind=kind,
                reason=reason,
                order_id=order_id,
                actor_id=actor_id,
            )
            for pid, (on_hand, reserved) in deltas.items()
        )
    _moved(levels, deltas)
    return entries


@dataclass(frozen=True, slots=True)
class Decision:
    """What to write for one order: the reservation of ``wanted``, or its rejection."""

    order_id: str
    user_id: int
    wanted: Mapping[int, int]
    rejection: str | None = None  # why it is rejected; None: reserve ``wanted``

    @property
    def status(self) -> str:
        if self.rejection is None:
            return Reservation.Status.RESERVED
        return Reservation.Status.REJECTED


def reserve(levels: Mapping[int, Level], decisions: Sequence[Decision]) -> dict[str, Reservation]:
    """Write each order's reservation or rejection, and move the locked levels it reserves.

    Returns what was written, by order id. An order that already has a reservation (of any
    status) is left out, with nothing of it written or moved.
    """
    now = timezone.now()
    kind, reason = StockLedgerEntry.Kind.RESERVE, "reserved for an order"
    if not _hand_written_sql():
        return _reserve_portable(levels, decisions, kind=kind, reason=reason)
    reserving = [d for d in decisions if d.rejection is None]
    with connection.cursor() as cursor:
        cursor.execute(
            _RESERVE_SQL,
            {
                "now": now,
                "orders": [d.order_id for d in decisions],
                "users": [d.user_id for d in decisions],
                "statuses": [d.status for d in decisions],
                "lines": [json.dumps(as_lines(d.wanted)) for d in decisions],
                "reasons": [d.rejection or "" for d in decisions],
                "line_orders": [d.order_id for d in reserving for _ in d.wanted],
                "products": [pid for d in reserving for pid in d.wanted],
                "quantities": [quantity for d in reserving for quantity in d.wanted.values()],
                "kind": kind,
                "reason": reason,
            },
        )
        ids = {order_id: pk for pk, order_id in cursor.fetchall()}
    written: dict[str, Reservation] = {}
    for d in decisions:
        pk = ids.get(uuid.UUID(d.order_id))
        if pk is None:
            continue
        if d.rejection is None:
            _moved(levels, {pid: (0, quantity) for pid, quantity in d.wanted.items()})
        lines = as_lines(d.wanted)
        written[d.order_id] = _reservation(
            pk, d.order_id, d.user_id, d.status, lines, d.rejection or "", now
        )
    return written


def _reserve_portable(
    levels: Mapping[int, Level], decisions: Sequence[Decision], *, kind: str, reason: str
) -> dict[str, Reservation]:
    """The same with the ORM, order by order."""
    written: dict[str, Reservation] = {}
    for d in decisions:
        if Reservation.objects.filter(order_id=d.order_id).exists():
            continue
        if d.rejection is None:
            deltas = {pid: (0, quantity) for pid, quantity in d.wanted.items()}
            apply(levels, deltas, kind=kind, reason=reason, order_id=d.order_id)
        written[d.order_id] = Reservation.objects.create(
            order_id=d.order_id,
            user_id=d.user_id,
            status=d.status,
            lines=as_lines(d.wanted),
            reason=d.rejection or "",
        )
    return written


def as_lines(wanted: Mapping[int, int]) -> list[dict[str, int]]:
    """Quantities per product as the lines of a reservation and of its events."""
    return [{"product_id": pid, "quantity": quantity} for pid, quantity in wanted.items()]


def _delta_arrays(deltas: Deltas) -> list[list[int]]:
    """The product ids, on_hand changes and reserved changes of ``deltas``, as three arrays."""
    return [
        list(deltas),
        [on_hand for on_hand, _ in deltas.values()],
        [reserved for _, reserved in deltas.values()],
    ]


def _moved(levels: Mapping[int, Level], deltas: Deltas) -> None:
    """Bring the locked levels in memory up to date with what the database now holds."""
    for pid, (on_hand, reserved) in deltas.items():
        level = levels[pid]
        level.on_hand += on_hand
        level.reserved += reserved


def _reservation(
    pk: int,
    order_id: str,
    user_id: int,
    status: str,
    lines: list[dict[str, int]],
    reason: str,
    now: datetime,
) -> Reservation:
    """The model instance of a reservation just inserted by hand, as if loaded from the database."""
    values = [pk, order_id, user_id, status, lines, reason, now, now]
    return Reservation.from_db(connection.alias, _RESERVATION_FIELDS, values)


def _per_product(deltas: Deltas, index: int) -> Case:
    whens = [When(product_id=pid, then=Value(delta[index])) for pid, delta in deltas.items()]
    return Case(*whens, default=Value(0), output_field=IntegerField())
