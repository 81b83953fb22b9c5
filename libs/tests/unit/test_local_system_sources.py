"""A service can run from another source tree (another version) than this checkout."""

from __future__ import annotations

import os
from pathlib import Path

from devstack.system import GATEWAY, SERVICES, LocalSystem, service_spec


def test_a_service_from_another_tree_runs_there_with_that_trees_libraries(tmp_path: Path) -> None:
    system = LocalSystem(sources={"orders": tmp_path}, log_dir=tmp_path / "logs")
    orders, inventory = service_spec("orders"), service_spec("inventory")

    assert system.directory(orders) == tmp_path / "services" / "orders"
    assert system.directory(inventory) == inventory.directory
    paths = system.environment(orders)["PYTHONPATH"].split(os.pathsep)
    assert paths[0] == str(tmp_path / "libs")
    assert str(tmp_path) not in system.environment(inventory).get("PYTHONPATH", "")

    system.build_processes()
    cwd = {p.label: p.cwd for p in system.processes}
    assert cwd["orders:web"] == cwd["orders:run_worker"] == tmp_path / "services" / "orders"
    assert cwd["inventory:web"] == inventory.directory
    assert cwd["gateway:web"] == GATEWAY.directory
    assert len(system.processes) == 2 * len(SERVICES) + 1
