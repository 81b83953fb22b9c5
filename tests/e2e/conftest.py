from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.system import LocalSystem
from tests.e2e.client import Api
from tests.e2e.harness import STAFF_PASSWORD, STAFF_USERNAME, running_system


class E2E:
    def __init__(self, system: LocalSystem, database_urls: dict[str, str], prefix: str) -> None:
        self.system = system
        self.database_urls = database_urls
        self.prefix = prefix
        self.anonymous = Api(
            system.url("inventory"), system.url("orders"), system.url("user-notification")
        )
        self.staff = self.anonymous.as_user(STAFF_USERNAME, STAFF_PASSWORD)


@pytest.fixture(scope="session")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    work_dir: Path = tmp_path_factory.mktemp("system")
    with running_system(work_dir) as (system, database_urls, prefix):
        try:
            yield E2E(system, database_urls, prefix)
        finally:
            print(f"\nprocess logs: {work_dir / 'logs'}")


@pytest.fixture
def staff(e2e: E2E) -> Api:
    return e2e.staff


@pytest.fixture
def customer(e2e: E2E) -> Api:
    return e2e.anonymous.register()
