"""``make demo``: the system of ``make up``, seeded through its public APIs (``devstack.seed``)
with warehouses, a catalogue with stock and a customer's orders in every state, then kept
running until Ctrl-C.

No public API makes a staff account, so the staff account comes from the mechanism ``make up``
uses: ``DJANGO_SUPERUSER_*`` when they are set, otherwise a generated username and password
handed to it the same way. The generated accounts are kept in ``var/demo-accounts.json``, so a
second run signs in with the same ones (and after ``make clean``, which deletes the databases,
makes them again with the same passwords).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from devstack import local_run
from devstack.seed import FINAL_STATUS, Account, Seeded, seed
from devstack.system import GATEWAY, LocalSystem
from service_runtime.settings import VAR_DIR

ACCOUNTS_FILE = VAR_DIR / "demo-accounts.json"
LOG_DIR = VAR_DIR / "logs"
STAFF_ENV = ("DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_PASSWORD", "DJANGO_SUPERUSER_EMAIL")


@dataclass(frozen=True)
class Accounts:
    staff: Account
    customer: Account

    @classmethod
    def load_or_create(cls, path: Path, staff: Account | None = None) -> Accounts:
        """The accounts kept in ``path``, or new ones written there; ``staff`` (an account that
        exists already) replaces the kept staff account."""
        if path.exists():
            kept = json.loads(path.read_text())
            accounts = cls(Account(**kept["staff"]), Account(**kept["customer"]))
        else:
            accounts = cls(
                Account("demo-staff", _password(), "demo-staff@example.com"),
                Account("demo-customer", _password(), "demo-customer@example.com"),
            )
        if staff is not None:
            accounts = cls(staff, accounts.customer)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(accounts), indent=2) + "\n")
        path.chmod(0o600)  # passwords
        return accounts


def _password() -> str:
    return f"demo-{secrets.token_urlsafe(12)}"


def staff_from_environment() -> Account | None:
    username, password, email = (os.environ.get(name, "") for name in STAFF_ENV)
    return Account(username, password, email) if username and password else None


def summary(console_url: str, accounts: Accounts, seeded: Seeded) -> str:
    """What the demonstration prints once it is seeded: where to go and who to be."""
    lines = [
        "",
        f"The demonstration is ready. Open the web console: {console_url}/",
        "",
        f"  staff     username {accounts.staff.username}  password {accounts.staff.password}",
        f"  customer  username {accounts.customer.username}  password {accounts.customer.password}",
        "",
        "The customer's orders:",
    ]
    for state, order_id in seeded.orders.items():
        lines.append(f"  {state.replace('_', ' '):<18} {FINAL_STATUS[state]:<18} {order_id}")
    lines += [
        "",
        f"Each process writes its output to {LOG_DIR}/. Press Ctrl-C to stop.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    accounts = Accounts.load_or_create(ACCOUNTS_FILE, staff_from_environment())
    # ensure_superuser (run with the migrations) creates the staff account from these.
    os.environ.update(
        dict(
            zip(
                STAFF_ENV,
                (accounts.staff.username, accounts.staff.password, accounts.staff.email),
                strict=True,
            )
        )
    )

    def seed_and_tell(system: LocalSystem) -> None:
        url = system.url(GATEWAY.name)
        print(f"seeding the demonstration through {url} …", flush=True)
        seeded = seed(url, accounts.staff, accounts.customer, say=lambda line: print(f"  {line}"))
        print(summary(url, accounts, seeded), flush=True)

    print(f"process logs: {LOG_DIR}/", flush=True)
    return local_run.main(on_ready=seed_and_tell, log_dir=LOG_DIR)


if __name__ == "__main__":
    sys.exit(main())
