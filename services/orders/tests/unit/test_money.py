"""Money in an order's answer: the same text as the serializer's DecimalField, whatever the
value's places."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.apis import _MONEY, _money


@pytest.mark.parametrize(
    "value",
    [
        "12.50",
        "0.00",
        "0",
        "12.5",
        "3",
        "1E+1",
        "0.005",
        "0.015",
        "12.345",
        "-3.10",
        "9999999999.99",
    ],
)
def test_money_is_the_fields_text(value: str) -> None:
    assert _money(Decimal(value)) == _MONEY.to_representation(Decimal(value))
