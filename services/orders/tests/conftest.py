"""Fixtures shared by the orders tests: authenticated clients, replica products, events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from identity.testing import make_access_token
from tests.factories import CUSTOMER_ID, OTHER_CUSTOMER_ID, STAFF_ID, product_upserted


@pytest.fixture
def client_for() -> Callable[..., APIClient]:
    def make(user_id: int, *, is_staff: bool = False) -> APIClient:
        client = APIClient()
        token = make_access_token(settings.JWT_PRIVATE_KEY_FILE, user_id=user_id, is_staff=is_staff)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    return make


@pytest.fixture
def customer(client_for: Callable[..., APIClient]) -> APIClient:
    return client_for(CUSTOMER_ID)


@pytest.fixture
def other_customer(client_for: Callable[..., APIClient]) -> APIClient:
    return client_for(OTHER_CUSTOMER_ID)


@pytest.fixture
def staff(client_for: Callable[..., APIClient]) -> APIClient:
    return client_for(STAFF_ID, is_staff=True)


@pytest.fixture
def make_product(db: None) -> Callable[..., Any]:
    """Put a product in the replica the way inventory does: through product.upserted."""
    from orders.handlers import on_product_upserted
    from product_replica.models import ProductReplica

    def make(product_id: int, *, price: str = "10.00", active: bool = True) -> ProductReplica:
        on_product_upserted(product_upserted(product_id, price=price, active=active))
        return ProductReplica.objects.get(pk=product_id)

    return make


@pytest.fixture
def products(make_product: Callable[..., Any]) -> dict[int, Any]:
    """Product 1 at 12.50, product 2 at 3.25, product 3 inactive."""
    return {
        1: make_product(1, price="12.50"),
        2: make_product(2, price="3.25"),
        3: make_product(3, price="1.00", active=False),
    }
