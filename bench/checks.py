"""Correctness after the load: every order final, nothing oversold, nothing lost.

Read straight from the services' databases (the bench owns them) and from the outcome events:

* every order final: each accepted order (202, or 200 on a retried key) had an outcome event;
* lost = accepted orders that are missing from the orders database or not final there;
* oversold = products whose reserved + shipped units exceed the stock the bench gave them,
  plus any row breaking the CHECK constraints (which must exist and be validated);
* the stock counters equal the ledger: ``manage.py reconcile_stock`` exits 0;
* the two services agree: units held by inventory = units of confirmed orders, per product;
* the flash sale confirmed exactly its stock.

Orders loaded as history by scenario (e) are left out of the order checks (they were never
placed through the API) but not out of the stock checks, which they must keep true.
"""

from __future__ import annotations

from typing import Any

import psycopg

from bench.dataset import KEY_PREFIX
from bench.listener import OutcomeListener
from bench.scenarios import OrderRecord
from devstack.stack import Stack

FINAL = ("CONFIRMED", "REJECTED", "CANCELLED", "SHIPPED")
STOCK_CHECKS = {
    "stock_on_hand_not_negative",
    "stock_reserved_not_negative",
    "stock_reserved_within_on_hand",
}


def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return list(connection.execute(query).fetchall())


def check(
    system: Stack,
    records: list[OrderRecord],
    listener: OutcomeListener,
    stock_given: dict[int, int],
    flash_product: int | None,
    flash_stock: int,
) -> dict[str, Any]:
    orders_url = system.database_urls["orders"]
    inventory_url = system.database_urls["inventory"]

    # orders
    accepted = {r.post.order_id for r in records if r.post.accepted and r.post.order_id}
    placed = f"idempotency_key NOT LIKE '{KEY_PREFIX}%'"  # not loaded as history (no params)
    in_db = dict(_rows(orders_url, f"SELECT id::text, status FROM orders_order WHERE {placed}"))  # noqa: S608
    loaded = _rows(orders_url, f"SELECT count(*) FROM orders_order WHERE NOT {placed}")[0][0]  # noqa: S608
    missing_in_db = sorted(accepted - in_db.keys())
    not_final_in_db = sorted(i for i in accepted if i in in_db and in_db[i] not in FINAL)
    not_final_events = listener.missing(accepted)
    status_disagrees = sorted(
        i
        for i in accepted
        if i in listener.outcomes and i in in_db and listener.outcomes[i].status != in_db[i]
    )
    unacknowledged = sorted(in_db.keys() - accepted)  # placed, but the client never saw a 202
    unacknowledged_not_final = [i for i in unacknowledged if in_db[i] not in FINAL]
    statuses: dict[str, int] = {}
    for status in in_db.values():
        statuses[status] = statuses.get(status, 0) + 1

    # stock
    levels = {
        int(p): (int(on_hand), int(reserved))
        for p, on_hand, reserved in _rows(
            inventory_url,
            # a product's totals over its warehouses
            "SELECT product_id, SUM(on_hand), SUM(reserved) FROM stock_stocklevel "
            "GROUP BY product_id",
        )
    }
    shipped = {
        int(p): int(units)
        for p, units in _rows(
            inventory_url,
            "SELECT product_id, -SUM(delta_on_hand) FROM stock_stockledgerentry "
            "WHERE kind = 'ship' GROUP BY product_id",
        )
    }
    oversold = sorted(
        p
        for p, given in stock_given.items()
        if levels.get(p, (0, 0))[1] + shipped.get(p, 0) > given
    )
    violations = _rows(
        inventory_url,
        "SELECT count(*) FROM stock_stocklevel "
        "WHERE on_hand < 0 OR reserved < 0 OR reserved > on_hand",
    )[0][0]
    constraints = {
        name: validated
        for name, validated in _rows(
            inventory_url,
            "SELECT conname, convalidated FROM pg_constraint "
            "WHERE conrelid = 'stock_stocklevel'::regclass AND contype = 'c'",
        )
    }
    constraints_ok = constraints.keys() >= STOCK_CHECKS and all(
        constraints[name] for name in STOCK_CHECKS
    )
    held = {
        int(p): int(units)
        for p, units in _rows(
            orders_url,
            "SELECT l.product_id, SUM(l.quantity) FROM orders_orderline l "
            "JOIN orders_order o ON o.id = l.order_id "
            "WHERE o.status IN ('CONFIRMED', 'SHIPPED') GROUP BY l.product_id",
        )
    }
    disagreements = sorted(
        p
        for p in set(held) | {p for p, (_, r) in levels.items() if r}
        if held.get(p, 0) != levels.get(p, (0, 0))[1] + shipped.get(p, 0)
    )
    reconcile = system.manage("inventory", "reconcile_stock")

    flash: dict[str, Any] | None = None
    if flash_product is not None:
        confirmed = held.get(flash_product, 0)
        flash = {
            "stock": flash_stock,
            "confirmed_units": confirmed,
            "reserved": levels.get(flash_product, (0, 0))[1],
            "exactly_the_stock": confirmed == flash_stock,
        }

    result = {
        "accepted_orders": len(accepted),
        "orders_in_database": len(in_db),
        "orders_loaded_as_history": int(loaded),
        "database_statuses": statuses,
        "every_order_final": not not_final_events and not not_final_in_db,
        "not_final": len(set(not_final_events) | set(not_final_in_db)),
        "lost": len(missing_in_db) + len(not_final_in_db),
        "missing_in_database": missing_in_db[:20],
        "event_and_database_disagree": len(status_disagrees),
        "placed_but_unacknowledged": len(unacknowledged),
        "placed_but_unacknowledged_not_final": len(unacknowledged_not_final),
        "duplicate_outcome_events": listener.duplicates,
        "oversold": len(oversold) + int(violations),
        "oversold_products": oversold[:20],
        "check_constraint_violations": int(violations),
        "check_constraints": constraints,
        "check_constraints_ok": constraints_ok,
        "inventory_and_orders_disagree_on_products": len(disagreements),
        "reconcile_stock_exit_code": reconcile.returncode,
        "reconcile_stock_output": (reconcile.stdout + reconcile.stderr).strip()[-2000:],
        "flash_sale": flash,
    }
    result["passed"] = bool(
        result["every_order_final"]
        and result["lost"] == 0
        and result["oversold"] == 0
        and constraints_ok
        and reconcile.returncode == 0
        and result["inventory_and_orders_disagree_on_products"] == 0
        and result["event_and_database_disagree"] == 0
        and result["placed_but_unacknowledged_not_final"] == 0
        and (flash is None or flash["exactly_the_stock"])
    )
    return result
