"""``make demo``'s accounts: generated once and kept, so that a second run signs in with the
same ones; a staff account from the environment replaces the generated one."""

from __future__ import annotations

import stat
from pathlib import Path

from devstack.demo import Accounts, summary
from devstack.seed import FINAL_STATUS, Account, Seeded


def test_accounts_are_generated_once_and_kept_private(tmp_path: Path) -> None:
    path = tmp_path / "var" / "demo-accounts.json"
    first = Accounts.load_or_create(path)
    assert first.staff.username != first.customer.username
    assert first.staff.password != first.customer.password
    assert len(first.customer.password) >= 16
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Accounts.load_or_create(path) == first


def test_a_staff_account_from_the_environment_replaces_the_generated_one(tmp_path: Path) -> None:
    path = tmp_path / "demo-accounts.json"
    generated = Accounts.load_or_create(path)
    admin = Account("admin", "admin-pass-123", "admin@example.com")
    given = Accounts.load_or_create(path, admin)
    assert given == Accounts(admin, generated.customer)
    assert Accounts.load_or_create(path) == given


def test_the_summary_names_the_console_both_accounts_and_every_order() -> None:
    accounts = Accounts(Account("s", "sp", ""), Account("c", "cp", ""))
    seeded = Seeded(orders={state: f"id-{state}" for state in FINAL_STATUS})
    text = summary("http://127.0.0.1:8000", accounts, seeded)
    assert "Open the web console: http://127.0.0.1:8000/" in text
    assert "staff     username s  password sp" in text
    assert "customer  username c  password cp" in text
    for state, status in FINAL_STATUS.items():
        assert f"{state.replace('_', ' '):<18} {status:<18} id-{state}" in text
