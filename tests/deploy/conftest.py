from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from tests.deploy import manifests


@pytest.fixture(scope="session")
def api_prefixes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Each service's API path prefixes, read from its own URL configuration."""
    return manifests.api_prefixes(str(tmp_path_factory.mktemp("var")))


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    return manifests.load_compose()


@pytest.fixture(scope="session")
def generator() -> ModuleType:
    return manifests.load_generator()


@pytest.fixture(scope="session")
def definitions() -> dict[str, Any]:
    return manifests.load_definitions()
