"""return.received: restocked units back on hand in the named warehouse, damaged ones written
off, each return once whatever its message id, and the waiting orders served."""

import logging
import uuid

import pytest

from messaging.consumer import MessageProcessor
from stock.handlers import HANDLERS, on_order_created, on_return_received
from stock.models import Reservation, StockLedgerEntry
from stock.selectors import stock_ledger_mismatches
from tests import factories
from tests.factories import as_body, published, stock_by_warehouse

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("either_stock_path")]


def received(lines, *, warehouse="default", return_id=7, order_id=None):
    envelope = factories.return_received(order_id or str(uuid.uuid4()), return_id, warehouse, lines)
    on_return_received(envelope)
    return envelope


def test_restocked_units_go_back_on_hand_in_the_named_warehouse(make_product, make_warehouse):
    make_warehouse("east")
    hammer = make_product(on_hand=5)

    envelope = received([(hammer.pk, 2, 0)], warehouse="east")

    assert stock_by_warehouse(hammer.pk) == {"default": (5, 0), "east": (2, 0)}
    entry = StockLedgerEntry.objects.get(kind="return")
    assert (entry.product_id, entry.warehouse.code) == (hammer.pk, "east")
    assert (entry.delta_on_hand, entry.delta_reserved) == (2, 0)
    assert "return 7" in entry.reason
    assert str(entry.order_id) == envelope.data["order_id"]
    assert stock_ledger_mismatches() == []


def test_damaged_units_are_written_off_without_changing_the_stock(make_product):
    hammer, nails = make_product(on_hand=5), make_product(on_hand=1)

    received([(hammer.pk, 1, 2), (nails.pk, 0, 1)])

    assert stock_by_warehouse(hammer.pk) == {"default": (6, 0)}
    assert stock_by_warehouse(nails.pk) == {"default": (1, 0)}
    offs = StockLedgerEntry.objects.filter(kind="write_off").order_by("product_id")
    assert [(e.product_id, e.delta_on_hand, e.delta_reserved) for e in offs] == [
        (hammer.pk, 0, 0),
        (nails.pk, 0, 0),
    ]
    assert "2 damaged" in offs[0].reason and "return 7" in offs[0].reason
    assert StockLedgerEntry.objects.filter(kind="return").count() == 1
    assert stock_ledger_mismatches() == []


def test_the_same_return_under_another_message_id_restocks_once(make_product):
    hammer = make_product(on_hand=0)
    order_id = str(uuid.uuid4())

    received([(hammer.pk, 3, 1)], order_id=order_id)
    received([(hammer.pk, 3, 1)], order_id=order_id)  # a new envelope: a new message id

    assert stock_by_warehouse(hammer.pk) == {"default": (3, 0)}
    assert StockLedgerEntry.objects.filter(kind="return").count() == 1
    assert StockLedgerEntry.objects.filter(kind="write_off").count() == 1


def test_an_unknown_warehouse_restocks_into_the_default_one_and_says_so(make_product, caplog):
    hammer = make_product(on_hand=0)

    with caplog.at_level(logging.WARNING, logger="stock.services"):
        received([(hammer.pk, 2, 0)], warehouse="nowhere")

    assert stock_by_warehouse(hammer.pk) == {"default": (2, 0)}
    entry = StockLedgerEntry.objects.get(kind="return")
    assert "'nowhere' unknown" in entry.reason
    assert any("nowhere" in record.getMessage() for record in caplog.records)


def test_a_restocked_return_confirms_a_waiting_backorder(make_product):
    hammer = make_product(on_hand=0, allow_backorder=True)
    waiting = factories.order_created([(hammer.pk, 2)])
    on_order_created(waiting)

    received([(hammer.pk, 2, 0)])

    reservation = Reservation.objects.get(order_id=waiting.data["order_id"])
    assert reservation.status == Reservation.Status.RESERVED
    assert [e.data["order_id"] for e in published("stock.reserved")] == [waiting.data["order_id"]]
    assert stock_by_warehouse(hammer.pk) == {"default": (2, 2)}
    assert stock_ledger_mismatches() == []


def test_a_return_of_an_unknown_product_is_dead_lettered_with_nothing_moved(make_product):
    hammer = make_product(on_hand=0)
    envelope = factories.return_received(
        str(uuid.uuid4()), 9, "default", [(hammer.pk, 1, 0), (999_999, 1, 0)]
    )
    processor = MessageProcessor(consumer="inventory", handlers=HANDLERS, max_attempts=3)

    outcome = processor.process(as_body(envelope))

    assert outcome.action == "dead"
    assert "999999" in outcome.reason
    assert stock_by_warehouse(hammer.pk) == {"default": (0, 0)}
    assert StockLedgerEntry.objects.filter(kind="return").count() == 0
