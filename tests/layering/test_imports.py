"""Which code may import which: the libraries' layers, and services that share nothing.

The layers of ``libs/`` are an import-linter contract in ``pyproject.toml``. Each service is a
source root of its own (every one has a ``config`` package), so its contract is written here,
from the packages found on disk: a service imports no other service's packages and not the
development stack, and no library imports a service's. A package added to a service is
covered without editing a list.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LIBS = REPO_ROOT / "libs"
SERVICES = sorted(p.parent for p in REPO_ROOT.glob("services/*/manage.py"))
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
DEVSTACK = "devstack"


def packages(root: Path) -> set[str]:
    """The top-level packages of a source root."""
    return {p.parent.name for p in root.glob("*/__init__.py")}


def lint_imports(cwd: Path, *config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache", *map(str, config)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def isolation_contract(root: Path, forbidden: set[str]) -> str:
    """An import-linter configuration: ``root``'s packages import none of ``forbidden``."""

    def lines(names: set[str]) -> str:
        return "".join(f"\n    {name}" for name in sorted(names))

    return (
        "[importlinter]\n"
        f"root_packages ={lines(packages(root))}\n"
        "include_external_packages = True\n\n"
        "[importlinter:contract:isolated]\n"
        f"name = {root.relative_to(REPO_ROOT)} keeps to its own code and the libraries\n"
        "type = forbidden\n"
        f"source_modules ={lines(packages(root))}\n"
        f"forbidden_modules ={lines(forbidden)}\n"
    )


def check_isolation(root: Path, forbidden: set[str], tmp_path: Path) -> None:
    # A name the root has itself (every service has `config`) is its own, not another's.
    config = tmp_path / "importlinter.ini"
    config.write_text(isolation_contract(root, forbidden - packages(root)))
    result = lint_imports(root, config)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_library_layers_hold() -> None:
    result = lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("service", SERVICES, ids=[s.name for s in SERVICES])
def test_a_service_imports_no_other_service_nor_the_devstack(service: Path, tmp_path: Path) -> None:
    others = set().union(*(packages(s) for s in SERVICES if s != service))
    check_isolation(service, others | {DEVSTACK}, tmp_path)


def test_no_library_imports_a_service(tmp_path: Path) -> None:
    check_isolation(LIBS, set().union(*(packages(s) for s in SERVICES)), tmp_path)


def test_every_service_is_checked() -> None:
    assert {s.name for s in SERVICES} == {"inventory", "orders", "user-notification"}
    assert all(packages(s) for s in SERVICES)
