"""Orders on the hot path: the written-out PostgreSQL statements, each beside its ORM twin.

Other databases (SQLite, for a laptop) take the twin; both store and read the same values.
Only statements a measured figure justifies are written out (``reports/bench-changes.md``):

- :func:`order_insert_priced`: a new order priced from the product replica, with its lines,
  its first history entry and its event, in one statement, its own transaction, instead of a
  read of the prices and four inserts between ``BEGIN`` and ``COMMIT`` (``POST /api/orders/``:
  the largest step of the closed loop); :func:`order_insert` is its ORM twin;
- :func:`order_detail_get`: an order with its lines, history, allocations and shipments in one
  statement, read as tuples, instead of an ORM query for each and their model instances
  (``GET /api/orders/{id}/``: about a third of its CPU);
- :func:`order_page`: a page of a list with each order's lines in one statement, read as
  tuples, instead of model instances and a prefetch (``GET /api/orders/``: half of its CPU,
  and the cyclic garbage behind its p99, ``reports/bench-profile.md``).

Everything else about orders goes through the ORM.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from django.db import connection, models, transaction
from django.db.models import QuerySet

from messaging import after_commit, outbox, sending
from messaging.models import OutboxMessage
from orders.models import (
    Order,
    OrderAllocation,
    OrderLine,
    OrderStatusChange,
    Shipment,
    ShipmentLine,
)
from product_replica.models import ProductReplica
from service_runtime import statements, transactions
from service_runtime.pagination import explicit_ordering, page_with_lateral


class PricedLine(NamedTuple):
    """The values of an ``OrderLine`` row (all but its ids), in the order the API shows them.

    A new line has shipped, cancelled and returned nothing (what :func:`order_insert_priced`
    leaves to the columns' defaults)."""

    product_id: int
    sku: str
    name: str
    unit_price: Decimal
    quantity: int
    line_total: Decimal
    shipped_quantity: int = 0
    cancelled_quantity: int = 0
    returned_quantity: int = 0


class AllocationEntry(NamedTuple):
    """The values of an ``OrderAllocation`` row (all but its ids), in the API's order."""

    product_id: int
    warehouse: str
    quantity: int
    shipped_quantity: int


class ShippedLine(NamedTuple):
    product_id: int
    quantity: int


class ShipmentEntry(NamedTuple):
    """A ``Shipment`` row with its lines (by id), in the API's order."""

    id: int
    warehouse: str | None
    created_at: datetime
    actor_user_id: int | None
    lines: tuple[ShippedLine, ...]


class HistoryEntry(NamedTuple):
    """The values of an ``OrderStatusChange`` row (all but its ids), in the API's order."""

    from_status: str
    to_status: str
    reason: str
    at: datetime
    caused_by_message_id: uuid.UUID | None
    actor_user_id: int | None


class OrderDetail(NamedTuple):
    """An order as its detail shows it: lines in the order they were placed in, history
    oldest first (by ``at``, then id)."""

    id: uuid.UUID
    user_id: int
    status: str
    total: Decimal
    refunded_total: Decimal
    lines: tuple[PricedLine, ...]
    rejection_reason: str
    rejected_lines: Any
    cancellation_reason: str
    created_at: datetime
    updated_at: datetime
    deadline: datetime
    history: tuple[HistoryEntry, ...]
    allocations: tuple[AllocationEntry, ...] = ()  # by id: as stock.reserved listed them
    shipments: tuple[ShipmentEntry, ...] = ()  # oldest first

    @classmethod
    def of(
        cls, order: Order, lines: Iterable[PricedLine], history: Iterable[HistoryEntry]
    ) -> OrderDetail:
        return cls(
            id=order.id,
            user_id=order.user_id,
            status=order.status,
            total=order.total,
            refunded_total=order.refunded_total,
            lines=tuple(lines),
            rejection_reason=order.rejection_reason,
            rejected_lines=order.rejected_lines,
            cancellation_reason=order.cancellation_reason,
            created_at=order.created_at,
            updated_at=order.updated_at,
            deadline=order.deadline,
            history=tuple(history),
        )


def _postgresql() -> bool:
    return connection.vendor == "postgresql"


# Writing a new order


def prices_in_statement() -> bool:
    """Whether :func:`order_insert_priced` can place an order (PostgreSQL); elsewhere the
    caller prices the lines and calls :func:`order_insert`."""
    return _postgresql()


def order_insert_priced(
    order: Order,
    lines: Sequence[tuple[int, int]],
    placed: HistoryEntry,
    event: OutboxMessage,
    max_total: Decimal,
) -> list[PricedLine] | None:
    """PostgreSQL: price ``lines`` (product id, quantity; distinct products, quantities of at
    least 1) from the product replica and store ``order`` (an unsaved instance with every value
    set but its total) with those lines, its first history entry and the outbox row of the
    ``event`` that announces it, all in one statement; the lines as stored, ``order.total`` set.

    None, with nothing written, when a product has no replica or is not active, or when the
    total would exceed ``max_total``: the caller says why. One statement, so one transaction of
    its own and no separate read of the prices: no ``BEGIN``, ``COMMIT`` or ``SELECT`` round
    trips. Inside a caller's transaction it runs in a savepoint of it, so that a constraint it
    meets leaves that transaction usable. A key placed before meets the unique constraint on
    ``(user_id, idempotency_key)`` and ``IntegrityError`` is raised, with nothing written.
    """
    rejected_lines = Order._meta.get_field("rejected_lines")
    assert isinstance(rejected_lines, models.Field)
    params: dict[str, Any] = {
        "id": order.id,
        "user_id": order.user_id,
        "status": str(order.status),
        "rejection_reason": order.rejection_reason,
        "rejected_lines": rejected_lines.get_db_prep_save(order.rejected_lines, connection),
        "cancellation_reason": order.cancellation_reason,
        "idempotency_key": order.idempotency_key,
        "request_fingerprint": order.request_fingerprint,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "deadline": order.deadline,
        # The lines as one JSON array of [product id, quantity], in the request's order: one
        # text parameter, where an array per column cost psycopg a type inspection and a dump
        # per element.
        "lines": json.dumps([list(line) for line in lines], separators=(",", ":")),
        # The same ids as an array: the replicas are found by their primary key, not by a
        # scan of the whole catalogue.
        "product_ids": [product_id for product_id, _ in lines],
        "line_count": len(lines),
        "max_total": max_total,
        **placed._asdict(),
        "from_status": str(placed.from_status),
        "to_status": str(placed.to_status),
        **outbox.insert_values(event, EVENT_PREFIX),
    }
    with (
        transactions.alone(),
        after_commit.carrying_marks() as (params["marked_at"], params["marks"]),
    ):
        rows = statements.execute(_order_insert_priced_sql(), params, prepared=True)
    if not rows or rows[0][0] is None:
        return None
    order.total = rows[0][0]
    # Now a stored row, as ``Order.objects.create`` leaves it (a later save() updates it).
    order._state.adding = False
    order._state.db = connection.alias
    return [PricedLine(*row[1:]) for row in rows]


def order_insert(
    order: Order, lines: list[PricedLine], placed: HistoryEntry, event: OutboxMessage
) -> HistoryEntry:
    """Elsewhere than PostgreSQL: store a new ``order`` (an unsaved instance with every value
    set), its ``lines`` (their ids follow the list), its first history entry and the outbox row
    of the ``event`` that announces it, all or nothing, through the ORM; the entry as stored.
    The ORM takes its own clock for the ``auto_now`` fields, as ``Model.save`` always does."""
    with transaction.atomic():
        outbox.insert([event])
        order.save(force_insert=True)
        OrderLine.objects.bulk_create([OrderLine(order=order, **line._asdict()) for line in lines])
        change = OrderStatusChange.objects.create(order=order, **placed._asdict())
    return HistoryEntry(*(getattr(change, name) for name in HistoryEntry._fields))


EVENT_PREFIX = "event_"  # of the outbox row's parameters in the order's statement
PLACEABLE = "EXISTS (SELECT FROM placeable)"  # the order's statement writes nothing otherwise


@functools.cache
def _order_insert_priced_sql() -> str:
    """The statement of :func:`order_insert_priced`; its text is the same every time, so it
    is prepared and runs on its generic plan (``service_runtime.statements``).

    ``requested`` reads the lines from one JSON array; ``priced`` joins them to the active
    replicas, found by primary key from the array of their ids (a missing or inactive product
    drops out); ``placeable`` is one row, the total,
    only when every line was priced and the total is within ``max_total``. The four inserts
    write only then, none reading another's output (the lines and the history entry name the
    order by the id it is given): ``new_order``; ``new_lines``, inserted in the request's order
    (so their ids follow it as ``bulk_create``'s do); ``new_event``, the outbox row of
    ``order.created``; ``new_change``, the history entry. Django's foreign keys are checked at
    commit, so the order in which PostgreSQL runs them does not matter. ``marked`` marks sent
    the events this web worker published earlier and has not marked yet
    (``after_commit.defer_marks``). The answer is the priced lines, each with the total (NULL
    when nothing was written).
    """
    qn = connection.ops.quote_name
    order, line, change, replica = (
        qn(m._meta.db_table) for m in (Order, OrderLine, OrderStatusChange, ProductReplica)
    )
    return f"""
        WITH requested AS (
            SELECT (x ->> 0)::bigint AS product_id, (x ->> 1)::bigint AS quantity, n
            FROM jsonb_array_elements(%(lines)s::jsonb) WITH ORDINALITY AS asked (x, n)
        ), priced AS (
            SELECT requested.n, requested.product_id, replica."sku", replica."name",
                replica."price" AS unit_price, requested.quantity,
                replica."price" * requested.quantity AS line_total
            FROM requested JOIN {replica} AS replica
                ON replica."product_id" = requested.product_id AND replica."active"
            WHERE replica."product_id" = ANY(%(product_ids)s::bigint[])
        ), placeable AS (
            SELECT sum(line_total) AS total FROM priced
            HAVING count(*) = %(line_count)s AND sum(line_total) <= %(max_total)s
        ), new_order AS (
            INSERT INTO {order} (
                "id", "user_id", "status", "total", "rejection_reason", "rejected_lines",
                "cancellation_reason", "idempotency_key", "request_fingerprint",
                "created_at", "updated_at", "deadline"
            )
            SELECT %(id)s, %(user_id)s, %(status)s, total, %(rejection_reason)s,
                %(rejected_lines)s, %(cancellation_reason)s, %(idempotency_key)s,
                %(request_fingerprint)s, %(created_at)s, %(updated_at)s, %(deadline)s
            FROM placeable
        ), new_lines AS (
            INSERT INTO {line} (
                "order_id", "product_id", "sku", "name", "unit_price", "quantity", "line_total"
            )
            SELECT %(id)s::uuid, product_id, sku, name, unit_price, quantity, line_total
            FROM priced WHERE {PLACEABLE}
            ORDER BY n
        ), new_event AS (
            {outbox.insert_statement(EVENT_PREFIX, PLACEABLE)}
        ), new_change AS (
            INSERT INTO {change} (
                "order_id", "from_status", "to_status", "reason", "at", "caused_by_message_id",
                "actor_user_id"
            )
            SELECT %(id)s, %(from_status)s, %(to_status)s, %(reason)s, %(at)s,
                %(caused_by_message_id)s, %(actor_user_id)s
            WHERE {PLACEABLE}
        ), {sending.carried_mark("%(marked_at)s", "%(marks)s")}
        SELECT (SELECT total FROM placeable), product_id, sku, name, unit_price,
            quantity, line_total
        FROM priced ORDER BY n
    """  # noqa: S608 (names come from the models)


# Reading one order


def order_detail_get(*, order_id: uuid.UUID, owner_id: int | None) -> OrderDetail | None:
    """The order with its lines, history, allocations and shipments; None when there is none,
    or when ``owner_id`` is given and the order is someone else's (``None``: anyone's, for
    staff)."""
    if not _postgresql():
        return _order_detail_get_orm(order_id, owner_id)
    params: dict[str, Any] = {"id": order_id, "owner_id": owner_id}
    found = statements.execute(_order_detail_sql(owned=owner_id is not None), params, prepared=True)
    if not found:
        return None
    row = found[0]
    (order_id, user_id, status, total, refunded_total, rejection_reason, rejected_lines,
     cancellation_reason, created_at, updated_at, deadline, *columns) = row  # fmt: skip
    # array_agg over no rows is NULL: no lines, no history, no allocation or no shipment.
    arrays = iter([c or () for c in columns])

    def rows(fields: tuple[str, ...]) -> list[tuple[Any, ...]]:
        return list(zip(*(next(arrays) for _ in fields), strict=True))

    lines = tuple(map(PricedLine._make, rows(PricedLine._fields)))
    history = tuple(map(HistoryEntry._make, rows(HistoryEntry._fields)))
    allocations = tuple(map(AllocationEntry._make, rows(AllocationEntry._fields)))
    shipments = rows(_SHIPMENT_COLUMNS)
    shipped = rows(_SHIPPED_LINE_COLUMNS)
    return OrderDetail(
        id=order_id,
        user_id=user_id,
        status=status,
        total=total,
        refunded_total=refunded_total,
        lines=lines,
        rejection_reason=rejection_reason,
        # jsonb arrives as text on Django's connections (its JSONField decodes it).
        rejected_lines=json.loads(rejected_lines),
        cancellation_reason=cancellation_reason,
        created_at=created_at,
        updated_at=updated_at,
        deadline=deadline,
        history=history,
        allocations=allocations,
        shipments=_shipments(shipments, shipped),
    )


# A shipment's columns, and its lines' (with the shipment they belong to), as the detail reads
# them: ShipmentEntry's fields, its ``lines`` apart.
_SHIPMENT_COLUMNS = ("id", "warehouse", "created_at", "actor_user_id")
_SHIPPED_LINE_COLUMNS = ("shipment_id", *ShippedLine._fields)


def _shipments(
    shipments: Iterable[tuple[Any, ...]], lines: Iterable[tuple[Any, ...]]
) -> tuple[ShipmentEntry, ...]:
    """Each shipment (id, warehouse, created_at, actor) with its lines ((shipment id,
    product, quantity)), in the orders given."""
    by_shipment: dict[int, list[ShippedLine]] = {}
    for shipment_id, product_id, quantity in lines:
        by_shipment.setdefault(shipment_id, []).append(ShippedLine(product_id, quantity))
    return tuple(
        ShipmentEntry(id_, warehouse, created_at, actor, tuple(by_shipment.get(id_, ())))
        for id_, warehouse, created_at, actor in shipments
    )


def _order_detail_get_orm(order_id: uuid.UUID, owner_id: int | None) -> OrderDetail | None:
    orders = Order.objects.filter(pk=order_id)
    if owner_id is not None:
        orders = orders.filter(user_id=owner_id)
    order = orders.first()
    if order is None:
        return None
    lines = order.lines.order_by("id").values_list(*PricedLine._fields)
    history = order.status_changes.order_by("at", "id").values_list(*HistoryEntry._fields)
    allocations = order.allocations.order_by("id").values_list(*AllocationEntry._fields)
    shipments = order.shipments.order_by("id").values_list(*_SHIPMENT_COLUMNS)
    shipped = (
        ShipmentLine.objects.filter(shipment__order=order)
        .order_by("id")
        .values_list(*_SHIPPED_LINE_COLUMNS)
    )
    return OrderDetail.of(
        order, map(PricedLine._make, lines), map(HistoryEntry._make, history)
    )._replace(
        allocations=tuple(map(AllocationEntry._make, allocations)),
        shipments=_shipments(shipments, shipped),
    )


def shipments_of(order_id: uuid.UUID, shipment_id: int | None = None) -> list[ShipmentEntry]:
    """The order's shipments with their lines, oldest first (only ``shipment_id`` if given)."""
    shipments = Shipment.objects.filter(order_id=order_id).order_by("id")
    if shipment_id is not None:
        shipments = shipments.filter(pk=shipment_id)
    shipped = (
        ShipmentLine.objects.filter(shipment__in=shipments)
        .order_by("id")
        .values_list(*_SHIPPED_LINE_COLUMNS)
    )
    return list(_shipments(shipments.values_list(*_SHIPMENT_COLUMNS), shipped))


# The detail's parts beside the order's own columns.
_NESTED = ("lines", "history", "allocations", "shipments")


@functools.cache
def _order_detail_sql(*, owned: bool) -> str:
    """The statement of :func:`order_detail_get`: the order's columns, then one array per
    column of its lines (by id: the order they were placed in), of its history (by ``at``,
    then id), of its allocations (by id), of its shipments (by id) and of their lines (by
    id). ``owned`` adds the owner's condition."""
    qn = connection.ops.quote_name
    order, line, change, allocation, shipment, shipped = (
        qn(m._meta.db_table)
        for m in (Order, OrderLine, OrderStatusChange, OrderAllocation, Shipment, ShipmentLine)
    )
    order_columns = [name for name in OrderDetail._fields if name not in _NESTED]

    def arrays(table: str, fields: tuple[str, ...], ordering: str, where: str = "") -> str:
        aggregates = ", ".join(f"array_agg(r.{qn(name)} ORDER BY {ordering})" for name in fields)
        where = where or f"r.{qn('order_id')} = o.{qn('id')}"
        return f"(SELECT {aggregates} FROM {table} AS r WHERE {where})"  # noqa: S608

    by_id = f"r.{qn('id')}"
    # A shipment's lines, for the order's shipments (the lines name no order).
    shipment_ids = (
        f"SELECT s.{qn('id')} FROM {shipment} AS s WHERE s.{qn('order_id')} = o.{qn('id')}"  # noqa: S608
    )
    of_shipments = f"r.{qn('shipment_id')} IN ({shipment_ids})"
    owner = f" AND o.{qn('user_id')} = %(owner_id)s" if owned else ""
    return f"""
        SELECT {", ".join(f"o.{qn(name)}" for name in order_columns)},
               lines.*, history.*, allocations.*, shipments.*, shipped.*
        FROM {order} AS o
        CROSS JOIN LATERAL {arrays(line, PricedLine._fields, by_id)} AS lines
        CROSS JOIN LATERAL {arrays(change, HistoryEntry._fields, f"r.{qn('at')}, {by_id}")}
            AS history
        CROSS JOIN LATERAL {arrays(allocation, AllocationEntry._fields, by_id)} AS allocations
        CROSS JOIN LATERAL {arrays(shipment, _SHIPMENT_COLUMNS, by_id)} AS shipments
        CROSS JOIN LATERAL {arrays(shipped, _SHIPPED_LINE_COLUMNS, by_id, of_shipments)}
            AS shipped
        WHERE o.{qn("id")} = %(id)s{owner}
    """  # noqa: S608 (names come from the models)


# The columns of an order that ``OrderDetail`` holds, in its order.
ORDER_COLUMNS = tuple(name for name in OrderDetail._fields if name not in _NESTED)


def _arrays(model: type[models.Model], fields: tuple[str, ...], ordering: str, order: str) -> str:
    """One array per field of ``model``'s rows that belong to the order aliased ``order``, in
    ``ordering``: a subquery of one row, for a ``CROSS JOIN LATERAL`` (NULLs when none)."""
    qn = connection.ops.quote_name
    aggregates = ", ".join(f"array_agg({qn(name)} ORDER BY {ordering})" for name in fields)
    where = f"{qn('order_id')} = {order}.{qn('id')}"
    return f"(SELECT {aggregates} FROM {qn(model._meta.db_table)} WHERE {where})"  # noqa: S608


def _lines_arrays(order: str) -> str:
    """The order's lines, by id: the order they were placed in."""
    return _arrays(OrderLine, PricedLine._fields, connection.ops.quote_name("id"), order)


# Reading a page of orders


def order_page(orders: QuerySet[Order]) -> list[OrderDetail]:
    """The orders of ``orders`` (filtered, ordered and sliced: a page of a list) with their
    lines, in one statement, without their history, allocations and shipments (``()``).

    The statement is ``orders``' own, as the ORM writes it, reading only the columns shown,
    and each row's lines are aggregated beside it, for the page's rows only (instead of one
    more query for the lines and a model instance for every order and line).
    """
    explicit_ordering(orders)
    if not _postgresql():
        return _order_page_orm(orders)
    rows = orders.values_list(*ORDER_COLUMNS)
    return [
        _page_item(row) for row in page_with_lateral(rows, ORDER_COLUMNS, _lines_arrays("page"))
    ]


def _page_item(row: tuple[Any, ...]) -> OrderDetail:
    """An order of a page from a row of :func:`order_page`'s statement: its columns, then one
    array per column of its lines (NULL when it has none)."""
    split = len(ORDER_COLUMNS)
    order = dict(zip(ORDER_COLUMNS, row[:split], strict=True))
    # jsonb arrives as text on Django's connections (its JSONField decodes it).
    order["rejected_lines"] = json.loads(order["rejected_lines"])
    lines = zip(*(column or () for column in row[split:]), strict=True)
    return OrderDetail(**order, lines=tuple(map(PricedLine._make, lines)), history=())


def _order_page_orm(orders: QuerySet[Order]) -> list[OrderDetail]:
    page = [
        dict(zip(ORDER_COLUMNS, row, strict=True)) for row in orders.values_list(*ORDER_COLUMNS)
    ]
    lines: dict[uuid.UUID, list[PricedLine]] = {order["id"]: [] for order in page}
    for order_id, *values in (
        OrderLine.objects.filter(order_id__in=lines)
        .order_by("id")
        .values_list("order_id", *PricedLine._fields)
    ):
        lines[order_id].append(PricedLine(*values))
    return [OrderDetail(**order, lines=tuple(lines[order["id"]]), history=()) for order in page]
