import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from stock.handlers import on_order_cancelled, on_order_created, on_order_shipped
from stock.models import Reservation, StockLevel
from stock.selectors import stock_ledger_mismatches
from tests import factories
from tests.factories import add_stock

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


def test_each_warehouse_is_checked_on_its_own(make_product, make_warehouse, capsys):
    make_warehouse("east", priority=5)
    hammer = make_product(on_hand=5)
    add_stock(hammer.pk, 5, "east")
    on_order_created(factories.order_created([(hammer.pk, 3)]))  # from east
    call_command("reconcile_stock")
    # a unit moved between warehouses behind the ledger's back: the totals still agree
    with connection.cursor() as cursor:
        for code, change in (("east", -1), ("default", 1)):
            cursor.execute(
                "UPDATE stock_stocklevel SET on_hand = on_hand + %s WHERE product_id = %s"
                " AND warehouse_id = (SELECT id FROM stock_warehouse WHERE code = %s)",
                [change, hammer.pk, code],
            )

    with pytest.raises(CommandError, match=r"1 products disagree .*\(2 product and warehouse"):
        call_command("reconcile_stock")

    assert [(m.warehouse, m.on_hand, m.ledger_on_hand) for m in stock_ledger_mismatches()] == [
        ("default", 6, 5),
        ("east", 4, 5),
    ]
    assert "in warehouse east" in capsys.readouterr().err


def test_reserved_units_no_reservation_holds_are_reported(busy_product):
    order = factories.order_created([(busy_product.pk, 4)])
    on_order_created(order)
    # the reservation let go of its units without giving them back, ledger and all
    Reservation.objects.filter(order_id=order.data["order_id"]).update(status="RELEASED")

    [mismatch] = stock_ledger_mismatches()

    assert (mismatch.reserved, mismatch.ledger_reserved, mismatch.held) == (4, 4, 0)
    assert "reserved 4 but ledger 4 and 0 held by reservations" in str(mismatch)
