"""The database itself refuses stock that would oversell, whatever the code above it does."""

import pytest
from django.db import IntegrityError, connection, transaction

from stock.models import StockLevel

pytestmark = pytest.mark.django_db


def raw_update(product, assignment):
    table = StockLevel._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {assignment} WHERE product_id = %s", [product.pk])  # noqa: S608


@pytest.mark.parametrize(
    ("assignment", "constraint"),
    [
        ("reserved = on_hand + 1", "stock_reserved_within_on_hand"),
        ("on_hand = -1, reserved = 0", "stock_on_hand_not_negative"),
        ("reserved = -1", "stock_reserved_not_negative"),
    ],
)
def test_a_raw_update_that_breaks_the_stock_rules_fails(make_product, assignment, constraint):
    hammer = make_product(on_hand=5)

    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        raw_update(hammer, assignment)

    stock = StockLevel.objects.get(product=hammer)
    assert (stock.on_hand, stock.reserved) == (5, 0)


def test_a_negative_price_is_refused(make_product):
    hammer = make_product()

    with pytest.raises(IntegrityError, match="product_price_not_negative"), transaction.atomic():
        type(hammer).objects.filter(pk=hammer.pk).update(price=-1)
