"""Scenario (e)'s history: many past orders written straight into the benchmark's databases.

What the services would hold after ``orders`` orders of the bench's customers over the bench's
products, each final: in orders the order, its lines, its status history and the inbox row of
inventory's answer; in inventory the reservation, its stock ledger entries, the counters they
add up to and the inbox row of ``order.created``; in user-notification the notification of the
order's outcome and its inbox row. The stock counters stay equal to their ledger and to the
orders' held units, so every correctness check still applies.

It is the benchmark's own set-up, like the customers and products it registers: one
``INSERT … SELECT … generate_series`` per table into its fresh databases, the three databases
side by side, then ``VACUUM ANALYZE`` (autovacuum may be off, and plans need statistics). Every
value follows from the order's number ``i``, so each database derives the same lines without
asking another. The order ids and message ids are made from ``i`` (in order, so the indexes
grow at their ends as they would over time); the idempotency keys start with
:data:`KEY_PREFIX`, which tells loaded orders from the bench's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg

KEY_PREFIX = "bench-load-"
HISTORY_DAYS = 365


@dataclass(frozen=True)
class History:
    orders: int
    customers: list[int]  # user ids, taking turns (see owner_index)
    products: list[int]  # product ids (with ample stock), each order has 1-3 of them

    @property
    def params(self) -> dict[str, Any]:
        return {
            "n": self.orders,
            "users": self.customers,
            "products": self.products,
            "max_lines": min(3, len(self.products)),
            "days": HISTORY_DAYS,
            "key_prefix": KEY_PREFIX,
        }


def loaded_order_id(i: int) -> str:
    """The id of loaded order ``i`` (1 to ``History.orders``; ``load_id(i, 0)`` below)."""
    return f"00000000-0000-4000-8000-{i:012x}"


def owner_index(i: int, customers: int) -> int:
    """Which of ``History.customers`` placed loaded order ``i``."""
    return (i // 20) % customers


# The id of loaded order i (kind 0) or of a message about it (kinds 1-3). Customers take turns
# by twenty orders (see :func:`owner_index`). One in twenty orders was rejected, one cancelled
# after its reservation, three are confirmed and not shipped yet, the rest shipped. An order's
# time: spread over the past HISTORY_DAYS, oldest first, ending a day ago (before anything the
# bench placed).
LOAD_ORDERS = """
    CREATE FUNCTION pg_temp.load_id(i bigint, kind int) RETURNS uuid
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT (lpad(to_hex(kind), 8, '0') || '-0000-4000-8000-'
                  || lpad(to_hex(i), 12, '0'))::uuid $$;
    CREATE TEMPORARY TABLE load_order ON COMMIT DROP AS
    SELECT i, pg_temp.load_id(i, 0) AS id,
           (%(users)s::bigint[])[1 + (i / 20) %% cardinality(%(users)s::bigint[])] AS user_id,
           CASE WHEN i %% 20 = 0 THEN 'REJECTED' WHEN i %% 20 = 1 THEN 'CANCELLED'
                WHEN i %% 20 < 5 THEN 'CONFIRMED' ELSE 'SHIPPED' END AS status,
           now() - interval '1 day'
                 - (%(n)s - i) * (interval '1 day' * %(days)s / %(n)s) AS created_at
    FROM generate_series(1, %(n)s) AS i
"""


LOAD_LINES = """
    CREATE TEMPORARY TABLE load_line ON COMMIT DROP AS
    SELECT o.i, k, o.id AS order_id, o.user_id, o.status, o.created_at,
           (%(products)s::bigint[])[1 + (o.i * 7 + k) %% cardinality(%(products)s::bigint[])]
               AS product_id,
           1 + (o.i + k) %% 3 AS quantity
    FROM load_order o CROSS JOIN generate_series(1, 3) AS k
    WHERE k <= 1 + o.i %% %(max_lines)s
"""

# Orders: the orders, lines and history as the saga left them, and the inbox rows of
# inventory's answers. Prices come from the orders service's own replica.
ORDERS_TABLES = (
    """
    CREATE TEMPORARY TABLE load_priced ON COMMIT DROP AS
    SELECT l.*, r.sku, r.name, r.price FROM load_line l JOIN product_replica r USING (product_id)
    """,
    """
    INSERT INTO orders_orderline
        (order_id, product_id, sku, name, unit_price, quantity, line_total, shipped_quantity,
         cancelled_quantity)
    SELECT order_id, product_id, sku, name, price, quantity, price * quantity,
           CASE WHEN status = 'SHIPPED' THEN quantity ELSE 0 END,
           CASE WHEN status IN ('CANCELLED', 'REJECTED') THEN quantity ELSE 0 END
    FROM load_priced ORDER BY i, k
    """,
    """
    INSERT INTO orders_order
        (id, user_id, status, total, rejection_reason, rejected_lines, cancellation_reason,
         idempotency_key, request_fingerprint, created_at, updated_at, deadline)
    SELECT o.id, o.user_id, o.status, t.total,
           CASE WHEN o.status = 'REJECTED' THEN 'insufficient stock' ELSE '' END, '[]',
           CASE WHEN o.status = 'CANCELLED' THEN 'cancelled by the customer' ELSE '' END,
           %(key_prefix)s || o.i, encode(sha256(o.i::text::bytea), 'hex'),
           o.created_at, o.created_at + interval '1 day', o.created_at + interval '15 minutes'
    FROM load_order o
    JOIN (SELECT i, sum(price * quantity) AS total FROM load_priced GROUP BY i) AS t USING (i)
    ORDER BY o.i
    """,
    """
    INSERT INTO orders_orderstatuschange
        (order_id, from_status, to_status, reason, at, caused_by_message_id, actor_user_id)
    SELECT o.id, s.from_status, s.to_status, s.reason, o.created_at + s.after,
           CASE WHEN s.by_event THEN pg_temp.load_id(o.i, 1) END,
           CASE WHEN s.by_customer THEN o.user_id END
    FROM load_order o JOIN (VALUES
        ('', 'PENDING', 'placed', interval '0', false, true,
         '{REJECTED,CANCELLED,CONFIRMED,SHIPPED}'),
        ('PENDING', 'CONFIRMED', 'stock reserved', interval '1 second', true, false,
         '{CANCELLED,CONFIRMED,SHIPPED}'),
        ('PENDING', 'REJECTED', 'insufficient stock', interval '1 second', true, false,
         '{REJECTED}'),
        ('CONFIRMED', 'CANCELLED', 'cancelled by the customer', interval '1 hour', false, true,
         '{CANCELLED}'),
        ('CONFIRMED', 'SHIPPED', 'shipped', interval '1 day', false, false, '{SHIPPED}')
    ) AS s (from_status, to_status, reason, after, by_event, by_customer, statuses)
    ON o.status = ANY(s.statuses::text[])
    ORDER BY o.i, s.after
    """,
    """
    INSERT INTO messaging_inboxmessage (consumer, message_id, message_type, processed_at)
    SELECT 'orders', pg_temp.load_id(i, 1),
           CASE WHEN status = 'REJECTED' THEN 'stock.rejected' ELSE 'stock.reserved' END,
           created_at + interval '1 second'
    FROM load_order ORDER BY i
    """,
)

# Inventory: reservations, the ledger of every unit reserved, shipped or released, the
# counters moved by the same amounts, and the inbox rows of order.created; all in the default
# warehouse, where the scenarios' stock is (adjustments that name no warehouse).
INVENTORY_TABLES = (
    """
    CREATE TEMPORARY TABLE load_warehouse ON COMMIT DROP AS
    SELECT id FROM stock_warehouse WHERE code = 'default'
    """,
    """
    INSERT INTO stock_reservation (order_id, user_id, status, lines, allocations, reason,
                                   created_at, updated_at)
    SELECT o.id, o.user_id,
           CASE o.status WHEN 'CONFIRMED' THEN 'RESERVED' WHEN 'CANCELLED' THEN 'RELEASED'
                ELSE o.status END,
           l.lines,
           CASE WHEN o.status = 'REJECTED' THEN '[]'::jsonb ELSE l.allocations END,
           CASE WHEN o.status = 'REJECTED' THEN 'insufficient stock' ELSE '' END,
           o.created_at, o.created_at + interval '1 day'
    FROM load_order o
    JOIN (SELECT i, jsonb_agg(jsonb_build_object('product_id', product_id,
                                                 'quantity', quantity) ORDER BY k) AS lines,
                 jsonb_agg(jsonb_build_object('product_id', product_id, 'warehouse_id', w.id,
                                              'quantity', quantity) ORDER BY k) AS allocations
          FROM load_line CROSS JOIN load_warehouse AS w GROUP BY i) AS l USING (i)
    ORDER BY o.i
    """,
    """
    INSERT INTO stock_stockledgerentry (product_id, warehouse_id, kind, delta_on_hand,
                                        delta_reserved, reason, order_id, created_at)
    SELECT l.product_id, w.id, e.kind, e.on_hand * l.quantity, e.reserved * l.quantity,
           e.reason, l.order_id, l.created_at + e.after
    FROM load_line l CROSS JOIN load_warehouse AS w JOIN (VALUES
        ('reserve', 0, 1, 'reserved for order', interval '1 second',
         '{CANCELLED,CONFIRMED,SHIPPED}'),
        ('release', 0, -1, 'released: order cancelled', interval '1 hour', '{CANCELLED}'),
        ('ship', -1, -1, 'shipped', interval '1 day', '{SHIPPED}')
    ) AS e (kind, on_hand, reserved, reason, after, statuses)
    ON l.status = ANY(e.statuses::text[])
    ORDER BY l.i, e.after, l.k
    """,
    """
    UPDATE stock_stocklevel AS s
    SET on_hand = s.on_hand - moved.shipped, reserved = s.reserved + moved.held
    FROM (SELECT product_id,
                 coalesce(sum(quantity) FILTER (WHERE status = 'SHIPPED'), 0) AS shipped,
                 coalesce(sum(quantity) FILTER (WHERE status = 'CONFIRMED'), 0) AS held
          FROM load_line GROUP BY product_id) AS moved
    WHERE s.product_id = moved.product_id AND s.warehouse_id = (SELECT id FROM load_warehouse)
    """,
    """
    INSERT INTO messaging_inboxmessage (consumer, message_id, message_type, processed_at)
    SELECT 'inventory', pg_temp.load_id(i, 2), 'order.created', created_at
    FROM load_order ORDER BY i
    """,
)

# User-notification: the notification of each order's outcome (all read but the latest twenty
# of a customer or so), and the inbox rows of the events that caused them.
NOTIFICATION_TABLES = (
    """
    INSERT INTO notifications_notification
        (user_id, kind, title, body, order_id, source_message_id, created_at, read_at)
    SELECT user_id, 'order_' || lower(status), 'Order ' || lower(status),
           'Your order ' || id || ' is ' || lower(status) || '.', id, pg_temp.load_id(i, 3),
           created_at + interval '2 seconds',
           CASE WHEN i <= %(n)s - 20 * cardinality(%(users)s::bigint[])
                THEN created_at + interval '1 hour' END
    FROM load_order ORDER BY i
    """,
    """
    INSERT INTO messaging_inboxmessage (consumer, message_id, message_type, processed_at)
    SELECT 'user-notification', pg_temp.load_id(i, 3), 'order.' || lower(status),
           created_at + interval '2 seconds'
    FROM load_order ORDER BY i
    """,
)

LOADED_TABLES = {
    "orders": ("orders_order", "orders_orderline", "orders_orderstatuschange",
               "messaging_inboxmessage"),
    "inventory": ("stock_reservation", "stock_stockledgerentry", "stock_stocklevel",
                  "messaging_inboxmessage"),
    "user-notification": ("notifications_notification", "messaging_inboxmessage"),
}  # fmt: skip
STATEMENTS = {
    "orders": ORDERS_TABLES,
    "inventory": INVENTORY_TABLES,
    "user-notification": NOTIFICATION_TABLES,
}


def _load_one(service: str, url: str, history: History) -> dict[str, Any]:
    began = time.monotonic()
    rows = 0
    # Client-side binding: the set-up statements are run once, and some are utility statements.
    with psycopg.connect(url, cursor_factory=psycopg.ClientCursor) as connection:
        with connection.transaction():
            # Every row is consistent by construction: no per-row foreign-key triggers, and
            # sorts and aggregates of a million rows in memory.
            connection.execute("SET LOCAL session_replication_role = replica")
            connection.execute("SET LOCAL work_mem = '256MB'")
            connection.execute("SET LOCAL synchronous_commit TO OFF")
            connection.execute(LOAD_ORDERS, history.params)
            connection.execute(LOAD_LINES, history.params)
            for statement in STATEMENTS[service]:
                cursor = connection.execute(statement, history.params)
                rows += max(cursor.rowcount, 0) if statement.lstrip().startswith("INSERT") else 0
        loaded = time.monotonic()
        connection.autocommit = True
        for table in LOADED_TABLES[service]:
            connection.execute(f"VACUUM (ANALYZE) {table}")
    return {
        "rows": rows,
        "insert_seconds": round(loaded - began, 1),
        "vacuum_analyze_seconds": round(time.monotonic() - loaded, 1),
    }


def load(
    database_urls: dict[str, str], history: History, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Write ``history`` into the three databases side by side; what was written, how fast."""
    began = time.monotonic()
    with ThreadPoolExecutor(len(STATEMENTS)) as pool:
        futures = {
            service: pool.submit(_load_one, service, database_urls[service], history)
            for service in STATEMENTS
        }
        per_database = {service: future.result() for service, future in futures.items()}
    seconds = round(time.monotonic() - began, 1)
    total = sum(figures["rows"] for figures in per_database.values())
    log(f"loaded {history.orders} orders ({total} rows) in {seconds}s")
    return {
        "orders": history.orders,
        "customers": len(history.customers),
        "products": len(history.products),
        "rows": total,
        "seconds": seconds,
        "per_database": per_database,
    }


def customer_ids(users_database_url: str, usernames: list[str]) -> list[int]:
    """The user ids of the bench's customers, in the order of ``usernames`` (from the
    user-notification database)."""
    with psycopg.connect(users_database_url) as connection:
        rows = connection.execute(
            "SELECT username, id FROM accounts_user WHERE username = ANY(%s)", [usernames]
        ).fetchall()
    ids = {str(username): int(user_id) for username, user_id in rows}
    return [ids[username] for username in usernames]
