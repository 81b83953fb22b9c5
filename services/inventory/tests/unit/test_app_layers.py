"""``catalogue`` builds on ``stock``, never the other way: stock knows products by their ids."""

import ast
from pathlib import Path

import pytest

STOCK = Path(__file__).resolve().parents[2] / "stock"


def _imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize(
    "path", sorted(STOCK.rglob("*.py")), ids=lambda p: str(p.relative_to(STOCK))
)
def test_stock_never_imports_the_catalogue(path: Path) -> None:
    assert not {m for m in _imported_modules(path) if m.split(".")[0] == "catalogue"}
