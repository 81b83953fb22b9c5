from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from catalogue.models import Product
from catalogue.services import product_create
from identity.testing import make_access_token
from stock import movements
from stock.models import Warehouse
from stock.services import stock_adjust
from stock.warehouses import warehouse_create
from tests.factories import CUSTOMER_ID, STAFF_ID


def _client(**claims: Any) -> APIClient:
    client = APIClient()
    token = make_access_token(settings.JWT_PRIVATE_KEY_FILE, **claims)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def anonymous_client() -> APIClient:
    return APIClient()


@pytest.fixture
def staff_client() -> APIClient:
    return _client(user_id=STAFF_ID, username="boss", is_staff=True)


@pytest.fixture
def customer_client() -> APIClient:
    return _client(user_id=CUSTOMER_ID, username="alice", is_staff=False)


@pytest.fixture(params=["sql", "orm"])
def either_stock_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test on both paths of ``stock.movements``: the hand-written PostgreSQL statements,
    and the ORM that other databases (SQLite under ``make up``) take."""
    if request.param == "orm":
        monkeypatch.setattr(movements, "_hand_written_sql", lambda: False)
    return str(request.param)


@pytest.fixture
def make_product() -> Callable[..., Product]:
    """A product with ``on_hand`` units, added through a stock adjustment like staff would."""
    counter = iter(range(1, 10_000))

    def make(*, on_hand: int = 0, **fields: Any) -> Product:
        n = next(counter)
        fields.setdefault("sku", f"SKU-{n}")
        fields.setdefault("name", f"Product {n}")
        fields.setdefault("price", Decimal("9.99"))
        product = product_create(**fields, correlation_id="test")
        if on_hand:
            stock_adjust(
                product_id=product.pk,
                delta=on_hand,
                reason="initial stock",
                actor_id=STAFF_ID,
                correlation_id="test",
            )
        return product

    return make


@pytest.fixture
def make_warehouse(db: None) -> Callable[..., Warehouse]:
    """A warehouse beside the default one (code ``default``, priority 0)."""

    def make(code: str, *, priority: int = 0, active: bool = True) -> Warehouse:
        return warehouse_create(code=code, name=code.title(), priority=priority, active=active)

    return make
