"""What must hold after every scenario, read straight from the three services' databases.

* every accepted order exists and is final (CONFIRMED, REJECTED, CANCELLED, SHIPPED), and
  inventory holds the matching reservation, and the customer was told;
* per product: reserved = the units of CONFIRMED (not yet shipped) orders; on_hand = stock
  given - units shipped; units confirmed or shipped <= stock given; on_hand >= 0; the stock
  ledger sums to the counters (and ``manage.py reconcile_stock`` agrees);
* nothing applied twice: one order per Idempotency-Key, one reservation, one ledger move of
  each kind per order and product, one status transition of each kind per order, one
  notification per (user, order, kind), one inbox row per (consumer, message), one outcome
  event per order;
* nothing left behind: every outbox drained, every queue (main and retry) empty;
* the dead-letter queues hold exactly the poison injected, and nothing else.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.driver import Accepted

SERVICES = ("inventory", "orders", "user-notification")

FINAL = {"CONFIRMED", "REJECTED", "CANCELLED", "SHIPPED"}
# What inventory's reservation must say once an order is final.
RESERVATION_FOR = {
    "CONFIRMED": {"RESERVED"},
    "SHIPPED": {"SHIPPED"},
    "REJECTED": {"REJECTED"},
    "CANCELLED": {"RELEASED", "CANCELLED", "REJECTED"},
}
# The notification kind a final order's owner must have received.
NOTIFICATION_FOR = {
    "CONFIRMED": "order_confirmed",
    "REJECTED": "order_rejected",
    "CANCELLED": "order_cancelled",
    "SHIPPED": "order_shipped",
}


@dataclass
class Findings:
    """Counts per invariant; ``problems`` keeps a few examples of each for the report."""

    orders_in_db: int = 0
    accepted: int = 0
    final: int = 0
    accepted_missing: int = 0
    not_final: int = 0
    reservation_mismatch: int = 0
    notification_missing: int = 0
    oversold_units: int = 0
    negative_on_hand: int = 0
    reserved_mismatch: int = 0
    on_hand_mismatch: int = 0
    ledger_mismatch: int = 0
    duplicates: Counter[str] = field(default_factory=Counter)
    outbox_unsent: dict[str, int] = field(default_factory=dict)
    queued: dict[str, int] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def note(self, kind: str, text: str) -> None:
        if len(self.problems[kind]) < 5:
            self.problems[kind].append(text)

    @property
    def lost(self) -> int:
        """Accepted orders that never completed everywhere: missing, stuck, or half-applied."""
        return (
            self.accepted_missing
            + self.not_final
            + self.reservation_mismatch
            + self.notification_missing
        )

    @property
    def oversold(self) -> int:
        return self.oversold_units + self.negative_on_hand

    @property
    def duplicate_effects(self) -> int:
        return sum(self.duplicates.values())

    @property
    def drained(self) -> bool:
        return not any(self.outbox_unsent.values()) and not any(self.queued.values())

    @property
    def settled(self) -> bool:
        """True once everything that must eventually hold does."""
        return (
            self.lost == 0
            and self.reserved_mismatch == 0
            and self.on_hand_mismatch == 0
            and self.drained
        )

    def violations(self) -> list[str]:
        found = []
        for name in (
            "accepted_missing",
            "not_final",
            "reservation_mismatch",
            "notification_missing",
            "oversold_units",
            "negative_on_hand",
            "reserved_mismatch",
            "on_hand_mismatch",
            "ledger_mismatch",
        ):
            value = getattr(self, name)
            if value:
                found.append(f"{name}={value}")
        found += [f"duplicate {kind}={count}" for kind, count in self.duplicates.items() if count]
        found += [f"outbox unsent {s}={n}" for s, n in self.outbox_unsent.items() if n]
        found += [f"queued {q}={n}" for q, n in self.queued.items() if n]
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "orders_in_db": self.orders_in_db,
            "accepted": self.accepted,
            "final": self.final,
            "lost": self.lost,
            "accepted_missing": self.accepted_missing,
            "not_final": self.not_final,
            "reservation_mismatch": self.reservation_mismatch,
            "notification_missing": self.notification_missing,
            "oversold": self.oversold,
            "negative_on_hand": self.negative_on_hand,
            "reserved_mismatch": self.reserved_mismatch,
            "on_hand_mismatch": self.on_hand_mismatch,
            "ledger_mismatch": self.ledger_mismatch,
            "duplicate_effects": self.duplicate_effects,
            "duplicates": dict(self.duplicates),
            "outbox_unsent": self.outbox_unsent,
            "queued": self.queued,
            "problems": dict(self.problems),
        }


# What is read, from which service's database; :func:`check` works on the rows alone.
QUERIES: dict[str, tuple[str, str]] = {
    "orders": ("orders", "SELECT id, user_id, status FROM orders_order"),
    "order_keys": ("orders", "SELECT id, idempotency_key FROM orders_order"),
    "order_lines": ("orders", "SELECT order_id, product_id, quantity FROM orders_orderline"),
    "transitions": (
        "orders",
        "SELECT order_id, from_status, to_status FROM orders_orderstatuschange "
        "WHERE from_status <> to_status",
    ),
    "reservations": ("inventory", "SELECT order_id, status, lines FROM stock_reservation"),
    # A product's totals over its warehouses.
    "stock_levels": (
        "inventory",
        "SELECT product_id, SUM(on_hand), SUM(reserved) FROM stock_stocklevel GROUP BY product_id",
    ),
    "ledger_sums": (
        "inventory",
        "SELECT product_id, SUM(delta_on_hand), SUM(delta_reserved) "
        "FROM stock_stockledgerentry GROUP BY product_id",
    ),
    # A move of one kind for an order, product and warehouse made twice; reserve moves by the
    # units instead: a backordered order takes its units in several moves (and warehouses), so
    # a reserve is a duplicate when they add up to more than the order's line.
    "ledger_repeats": (
        "inventory",
        "SELECT order_id, product_id, kind, COUNT(*) FROM stock_stockledgerentry "
        "WHERE order_id IS NOT NULL AND kind <> 'reserve' "
        "GROUP BY order_id, product_id, kind, warehouse_id HAVING COUNT(*) > 1 "
        "UNION ALL "
        "SELECT e.order_id, e.product_id, e.kind, 2 FROM stock_stockledgerentry e "
        "JOIN stock_reservation r ON r.order_id = e.order_id "
        "CROSS JOIN LATERAL jsonb_array_elements(r.lines) line "
        "WHERE e.kind = 'reserve' AND (line->>'product_id')::bigint = e.product_id "
        "GROUP BY e.order_id, e.product_id, e.kind, line->>'quantity' "
        "HAVING SUM(e.delta_reserved) > (line->>'quantity')::bigint",
    ),
    "notifications": (
        "user-notification",
        "SELECT user_id, order_id, kind FROM notifications_notification WHERE order_id IS NOT NULL",
    ),
    # order.shipped is once per shipment: an order held in two warehouses ships in two.
    "orders_events": (
        "orders",
        "SELECT routing_key, correlation_id, COUNT(*) FROM messaging_outboxmessage WHERE "
        "routing_key IN ('order.confirmed', 'order.rejected', 'order.shipped') "
        "GROUP BY 1, 2, CASE WHEN routing_key = 'order.shipped' "
        "THEN body::jsonb -> 'data' ->> 'shipment_id' END HAVING COUNT(*) > 1",
    ),
    "inventory_events": (
        "inventory",
        "SELECT routing_key, correlation_id, COUNT(*) FROM messaging_outboxmessage WHERE "
        "routing_key IN ('stock.reserved', 'stock.rejected', 'stock.released') "
        "GROUP BY 1, 2 HAVING COUNT(*) > 1",
    ),
}
for _service in SERVICES:
    QUERIES[f"unsent {_service}"] = (
        _service,
        "SELECT COUNT(*) FROM messaging_outboxmessage WHERE sent_at IS NULL",
    )
    QUERIES[f"inbox repeats {_service}"] = (
        _service,
        "SELECT consumer, message_id, COUNT(*) FROM messaging_inboxmessage "
        "GROUP BY 1, 2 HAVING COUNT(*) > 1",
    )

Rows = dict[str, list[tuple[Any, ...]]]


def read(connections: dict[str, Any]) -> Rows:
    """Run every query against its service's database connection."""
    return {
        name: list(connections[service].execute(query).fetchall())
        for name, (service, query) in QUERIES.items()
    }


def check(
    rows: Rows,
    *,
    accepted: dict[str, Accepted],
    stock_given: dict[int, int],
    queued: dict[str, int],
) -> Findings:
    """Every invariant except the dead-letter one (see :func:`dead_letter_problems`)."""
    f = Findings(
        accepted=len(accepted), queued={q: n for q, n in queued.items() if ".dlq" not in q}
    )

    # ---- orders ----
    orders = {str(oid): (int(uid), status) for oid, uid, status in rows["orders"]}
    f.orders_in_db = len(orders)
    lines: dict[str, dict[int, int]] = defaultdict(dict)
    for oid, pid, quantity in rows["order_lines"]:
        lines[str(oid)][int(pid)] = int(quantity)
    for order_id in accepted:
        if order_id not in orders:
            f.accepted_missing += 1
            f.note("accepted_missing", order_id)
    for order_id, (_, status) in orders.items():
        if status in FINAL:
            f.final += 1 if order_id in accepted else 0
        else:
            f.not_final += 1
            f.note("not_final", f"{order_id} {status}")

    # One order per request, however often it was retried: every order made under an accepted
    # request's Idempotency-Key is the one the client was answered with.
    by_key: dict[str, set[str]] = defaultdict(set)
    for oid, key in rows.get("order_keys", []):
        by_key[str(key)].add(str(oid))
    for order_id, request in accepted.items():
        others = by_key.get(request.key, set()) - {order_id} if request.key else set()
        if others:
            f.duplicates["order per Idempotency-Key"] += len(others)
            f.note("duplicate", f"key {request.key}: orders {sorted(others)} besides {order_id}")

    ever_confirmed = set()
    transitions: Counter[tuple[str, str]] = Counter()
    for oid, _from_status, to_status in rows["transitions"]:
        transitions[(str(oid), to_status)] += 1
        if to_status == "CONFIRMED":
            ever_confirmed.add(str(oid))
    for (order_id, to_status), count in transitions.items():
        if count > 1:
            f.duplicates["order transition"] += count - 1
            f.note("duplicate", f"order {order_id} became {to_status} {count} times")

    # ---- inventory ----
    reservations: dict[str, tuple[str, dict[int, int]]] = {}
    reservation_count: Counter[str] = Counter()
    for oid, status, reservation_lines in rows["reservations"]:
        reservation_count[str(oid)] += 1
        quantities = {int(x["product_id"]): int(x["quantity"]) for x in reservation_lines or []}
        reservations[str(oid)] = (status, quantities)
    for count in reservation_count.values():
        if count > 1:
            f.duplicates["reservation"] += count - 1
    for order_id, (_, status) in orders.items():
        if status not in FINAL:
            continue
        held = reservations.get(order_id)
        if held is None or held[0] not in RESERVATION_FOR[status]:
            f.reservation_mismatch += 1
            f.note("reservation_mismatch", f"order {order_id} {status}, reservation {held}")
        elif status in ("CONFIRMED", "SHIPPED") and held[1] != lines[order_id]:
            f.reservation_mismatch += 1
            f.note("reservation_mismatch", f"order {order_id} lines {lines[order_id]} vs {held}")
    for order_id, (status, _) in reservations.items():
        if status == "RESERVED" and orders.get(order_id, (0, ""))[1] != "CONFIRMED":
            f.reservation_mismatch += 1
            f.note(
                "reservation_mismatch",
                f"reservation {order_id} RESERVED, order {orders.get(order_id)}",
            )

    confirmed_units: Counter[int] = Counter()
    shipped_units: Counter[int] = Counter()
    for order_id, (_, status) in orders.items():
        for pid, quantity in lines[order_id].items():
            if status == "CONFIRMED":
                confirmed_units[pid] += quantity
            elif status == "SHIPPED":
                shipped_units[pid] += quantity
    levels = {
        int(pid): (int(on_hand), int(reserved)) for pid, on_hand, reserved in rows["stock_levels"]
    }
    for pid, given in stock_given.items():
        on_hand, reserved = levels.get(pid, (0, 0))
        over = confirmed_units[pid] + shipped_units[pid] - given
        if over > 0:
            f.oversold_units += over
            f.note("oversold", f"product {pid}: {over} units more than the {given} given")
        if on_hand < 0:
            f.negative_on_hand += 1
        if reserved != confirmed_units[pid]:
            f.reserved_mismatch += 1
            f.note(
                "reserved", f"product {pid}: reserved {reserved}, confirmed {confirmed_units[pid]}"
            )
        if on_hand != given - shipped_units[pid]:
            f.on_hand_mismatch += 1
            f.note(
                "on_hand",
                f"product {pid}: on_hand {on_hand}, given {given} - shipped {shipped_units[pid]}",
            )

    sums = {int(pid): (int(a), int(b)) for pid, a, b in rows["ledger_sums"]}
    for pid, counters in levels.items():
        if sums.get(pid, (0, 0)) != counters:
            f.ledger_mismatch += 1
            f.note("ledger", f"product {pid}: counters {counters}, ledger {sums.get(pid)}")
    for oid, pid, kind, count in rows["ledger_repeats"]:
        f.duplicates[f"ledger {kind}"] += int(count) - 1
        f.note("duplicate", f"ledger {kind} for order {oid} product {pid} x{count}")

    # ---- notifications ----
    told: Counter[tuple[int, str, str]] = Counter()
    for uid, oid, kind in rows["notifications"]:
        told[(int(uid), str(oid), kind)] += 1
    for key, count in told.items():
        if count > 1:
            f.duplicates["notification"] += count - 1
            f.note("duplicate", f"notification {key} x{count}")
    for order_id, (uid, status) in orders.items():
        if status not in FINAL:
            continue
        kinds = [NOTIFICATION_FOR[status]]
        if status in ("CANCELLED", "SHIPPED") and order_id in ever_confirmed:
            kinds.append("order_confirmed")
        for kind in kinds:
            if (uid, order_id, kind) not in told:
                f.notification_missing += 1
                f.note("notification_missing", f"{kind} for order {order_id} (user {uid})")

    # ---- messaging, in every service ----
    for service in SERVICES:
        [(unsent,)] = rows[f"unsent {service}"]
        f.outbox_unsent[service] = int(unsent)
        for consumer, message_id, count in rows[f"inbox repeats {service}"]:
            f.duplicates["inbox"] += int(count) - 1
            f.note("duplicate", f"inbox {consumer} {message_id} x{count}")
    # One outcome event per order (order.cancelled may be re-sent on purpose to release a late
    # reservation; inventory's release is idempotent, so it is not counted here).
    for routing_key, correlation_id, count in rows["orders_events"] + rows["inventory_events"]:
        f.duplicates[f"event {routing_key}"] += int(count) - 1
        f.note("duplicate", f"{routing_key} for {correlation_id} x{count}")
    return f


def dead_letter_problems(
    found: dict[str, list[str | None]], injected: dict[str, list[str]]
) -> list[str]:
    """Differences between what each dead-letter queue holds and the poison injected into it."""
    problems = []
    for queue in sorted(set(found) | set(injected)):
        have = Counter(str(message_id) for message_id in found.get(queue, []))
        want = Counter(injected.get(queue, []))
        extra = have - want
        missing = want - have
        if extra:
            problems.append(f"{queue}: {sum(extra.values())} unexpected ({list(extra)[:3]})")
        if missing:
            problems.append(f"{queue}: {sum(missing.values())} injected but absent")
    return problems
