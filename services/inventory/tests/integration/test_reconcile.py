import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from stock.handlers import on_order_cancelled, on_order_created, on_order_shipped
from stock.models import StockLevel
from stock.selectors import stock_ledger_mismatches
from tests import factories

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("either_stock_path")]


@pytest.fixture
def busy_product(make_product):
    """A product that has been adjusted, reserved, released and shipped."""
    hammer = make_product(on_hand=10)
    kept = factories.order_created([(hammer.pk, 3)])
    dropped = factories.order_created([(hammer.pk, 2)])
    on_order_created(kept)
    on_order_created(dropped)
    on_order_cancelled(factories.order_cancelled(dropped.data["order_id"]))
    on_order_shipped(factories.order_shipped(kept.data["order_id"]))
    return hammer


def test_counters_agree_with_the_ledger_after_every_kind_of_move(busy_product, capsys):
    call_command("reconcile_stock")

    assert "stock counters match the ledger" in capsys.readouterr().out
    stock = StockLevel.objects.get(product=busy_product)
    assert (stock.on_hand, stock.reserved) == (7, 0)


def test_a_counter_changed_behind_the_ledger_is_reported(busy_product, capsys):
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE stock_stocklevel SET on_hand = on_hand + 1 WHERE product_id = %s",
            [busy_product.pk],
        )

    with pytest.raises(CommandError, match="1 products disagree"):
        call_command("reconcile_stock")

    [mismatch] = stock_ledger_mismatches()
    assert (mismatch.on_hand, mismatch.ledger_on_hand) == (8, 7)
    assert f"product {busy_product.pk} ({busy_product.sku}): on_hand 8 but ledger 7" in (
        capsys.readouterr().err
    )
