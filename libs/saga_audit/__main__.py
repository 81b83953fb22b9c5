"""``python -m saga_audit``: compare orders and inventory reservations through the staff APIs.

Prints each drift on a line of its own and exits 1 when there is any; 0 when there is none; 2
when a service could not be read. Settings from the environment (or the options):
``SAGA_AUDIT_ORDERS_URL``, ``SAGA_AUDIT_INVENTORY_URL``, ``SAGA_AUDIT_USERS_URL`` (default the
local gateway, http://127.0.0.1:8000), ``SAGA_AUDIT_USERNAME``, ``SAGA_AUDIT_PASSWORD`` (a staff
account), ``SAGA_AUDIT_GRACE_SECONDS`` (300), ``SAGA_AUDIT_SHIPPED_DAYS`` (empty: every SHIPPED
order).
"""

from __future__ import annotations

import argparse
import os
import sys

from saga_audit.client import AuditUnavailable
from saga_audit.run import DEFAULT_GRACE, audit_as

GATEWAY = "http://127.0.0.1:8000"


def parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parse = argparse.ArgumentParser(prog="python -m saga_audit", description=__doc__)
    parse.add_argument("--orders-url", default=env("SAGA_AUDIT_ORDERS_URL", GATEWAY))
    parse.add_argument("--inventory-url", default=env("SAGA_AUDIT_INVENTORY_URL", GATEWAY))
    parse.add_argument("--users-url", default=env("SAGA_AUDIT_USERS_URL", GATEWAY))
    parse.add_argument("--username", default=env("SAGA_AUDIT_USERNAME", ""))
    parse.add_argument("--password", default=env("SAGA_AUDIT_PASSWORD", ""))
    parse.add_argument(
        "--grace",
        type=float,
        default=float(env("SAGA_AUDIT_GRACE_SECONDS", DEFAULT_GRACE.total_seconds())),
        help="seconds: orders and reservations changed more recently are in flight, skipped",
    )
    parse.add_argument(
        "--shipped-days",
        type=float,
        default=float(env("SAGA_AUDIT_SHIPPED_DAYS") or 0) or None,
        help="only the SHIPPED orders placed in the last N days (default: all)",
    )
    return parse


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.username or not args.password:
        print("a staff account is needed: --username/--password", file=sys.stderr)
        return 2
    try:
        result = audit_as(
            orders_url=args.orders_url,
            inventory_url=args.inventory_url,
            users_url=args.users_url,
            username=args.username,
            password=args.password,
            grace_seconds=args.grace,
            shipped_days=args.shipped_days,
        )
    except AuditUnavailable as exc:
        print(f"audit not possible: {exc}", file=sys.stderr)
        return 2
    for drift in result.drift:
        print(f"DRIFT {drift}")
    print(
        f"{len(result.drift)} drift(s) in {result.orders} orders and "
        f"{result.reservations} reservations compared"
    )
    return 1 if result.drift else 0


if __name__ == "__main__":
    sys.exit(main())
