"""Backorders: an order short of products that allow them waits, holding what there was, and
every stock increase serves the waiting list (the overdue first, taking what they can; then the
others in arrival order, each all or nothing)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from stock import backorders, movements
from stock.handlers import on_order_cancelled, on_order_created
from stock.models import Backorder, BackorderWake, Reservation, StockLedgerEntry
from stock.selectors import backorder_waiting_list, stock_ledger_mismatches
from stock.services import stock_transfer
from tests import factories
from tests.factories import STAFF_ID, add_stock, published, stock_by_warehouse

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("either_stock_path")]


def order(lines, order_id=None):
    """An order.created handled; its envelope."""
    envelope = factories.order_created(lines, order_id=order_id)
    on_order_created(envelope)
    return envelope


def reservation(envelope) -> Reservation:
    return Reservation.objects.get(order_id=envelope.data["order_id"])


def status(envelope) -> str:
    return reservation(envelope).status


def missing(envelope) -> dict[int, int]:
    rows = Backorder.objects.filter(reservation=reservation(envelope))
    return {row.product_id: row.missing for row in rows}


def reserved_ids() -> list[str]:
    return [event.data["order_id"] for event in published("stock.reserved")]


def age(envelope, seconds: int) -> None:
    """Make an order look as if it had arrived ``seconds`` ago."""
    then = timezone.now() - timedelta(seconds=seconds)
    Reservation.objects.filter(order_id=envelope.data["order_id"]).update(created_at=then)


OVERDUE = 86400 + 60


class TestBackordering:
    def test_an_order_short_of_a_backorderable_product_waits_holding_what_there_is(
        self, make_product, make_warehouse
    ):
        make_warehouse("east", priority=5)
        hammer = make_product(on_hand=2, allow_backorder=True)
        add_stock(hammer.pk, 1, "east")
        nails = make_product(on_hand=10)

        envelope = order([(hammer.pk, 5), (nails.pk, 4)])

        assert status(envelope) == Reservation.Status.BACKORDERED
        assert missing(envelope) == {hammer.pk: 2}
        # what there was, by warehouse priority (east first), held now
        assert stock_by_warehouse(hammer.pk) == {"default": (2, 2), "east": (1, 1)}
        assert stock_by_warehouse(nails.pk) == {"default": (10, 4)}
        [event] = published("stock.backordered")
        assert event.data["waiting"] == [{"product_id": hammer.pk, "quantity": 2}]
        assert event.data["lines"] == [
            {"product_id": hammer.pk, "quantity": 5},
            {"product_id": nails.pk, "quantity": 4},
        ]
        assert sorted(
            (a["product_id"], a["warehouse"], a["quantity"]) for a in event.data["allocations"]
        ) == sorted([(hammer.pk, "east", 1), (hammer.pk, "default", 2), (nails.pk, "default", 4)])
        assert published("stock.rejected") == []
        assert stock_ledger_mismatches() == []

    def test_an_order_short_of_a_product_without_backorders_is_rejected(self, make_product):
        waits = make_product(on_hand=0, allow_backorder=True)
        strict = make_product(on_hand=1)

        envelope = order([(waits.pk, 2), (strict.pk, 3)])

        assert status(envelope) == Reservation.Status.REJECTED
        assert Backorder.objects.count() == 0
        assert published("stock.backordered") == []
        [rejected] = published("stock.rejected")
        assert {line["product_id"] for line in rejected.data["lines"]} == {waits.pk, strict.pk}
        assert stock_by_warehouse(waits.pk) == {"default": (0, 0)}

    def test_an_inactive_backorderable_product_is_rejected(self, make_product):
        gone = make_product(on_hand=0, allow_backorder=True, active=False)

        assert status(order([(gone.pk, 1)])) == Reservation.Status.REJECTED

    def test_an_order_that_fits_is_reserved_as_before(self, make_product):
        hammer = make_product(on_hand=5, allow_backorder=True)

        envelope = order([(hammer.pk, 5)])

        assert status(envelope) == Reservation.Status.RESERVED
        assert Backorder.objects.count() == 0


class TestServing:
    def test_six_units_in_three_deliveries_serve_the_first_six_of_ten_in_arrival_order(
        self, make_product
    ):
        hammer = make_product(on_hand=0, allow_backorder=True)
        envelopes = [order([(hammer.pk, 1)]) for _ in range(10)]
        assert {status(e) for e in envelopes} == {Reservation.Status.BACKORDERED}

        for _ in range(3):
            add_stock(hammer.pk, 2)

        ids = [e.data["order_id"] for e in envelopes]
        assert reserved_ids() == ids[:6]
        assert [status(e) for e in envelopes] == ["RESERVED"] * 6 + ["BACKORDERED"] * 4
        places = backorder_waiting_list(product_id=hammer.pk)
        assert [(p.order_id, p.place, p.quantity) for p in places] == [
            (order_id, place, 1) for place, order_id in enumerate(ids[6:], 1)
        ]
        assert stock_by_warehouse(hammer.pk) == {"default": (6, 6)}
        assert stock_ledger_mismatches() == []

    def test_a_completed_order_holds_everything_and_announces_it(self, make_product):
        hammer = make_product(on_hand=1, allow_backorder=True)
        nails = make_product(on_hand=3)
        envelope = order([(hammer.pk, 3), (nails.pk, 2)])

        add_stock(hammer.pk, 2)

        done = reservation(envelope)
        assert done.status == Reservation.Status.RESERVED
        assert done.held() == {
            (hammer.pk, done.allocations[0]["warehouse_id"]): 3,
            (nails.pk, done.allocations[1]["warehouse_id"]): 2,
        }
        assert Backorder.objects.count() == 0
        [event] = published("stock.reserved")
        assert event.data["order_id"] == envelope.data["order_id"]
        entries = StockLedgerEntry.objects.filter(kind="reserve", product=hammer)
        assert sorted(e.delta_reserved for e in entries) == [1, 2]
        assert stock_ledger_mismatches() == []

    def test_an_overdue_order_accumulates_deliveries_before_a_newer_one(self, make_product):
        hammer = make_product(on_hand=0, allow_backorder=True)
        old = order([(hammer.pk, 5)])
        age(old, OVERDUE)
        new = order([(hammer.pk, 1)])

        add_stock(hammer.pk, 2)
        assert missing(old) == {hammer.pk: 3}
        assert missing(new) == {hammer.pk: 1}
        add_stock(hammer.pk, 2)
        assert missing(old) == {hammer.pk: 1}
        assert status(new) == Reservation.Status.BACKORDERED
        add_stock(hammer.pk, 1)
        assert status(old) == Reservation.Status.RESERVED
        assert status(new) == Reservation.Status.BACKORDERED
        add_stock(hammer.pk, 1)

        assert status(new) == Reservation.Status.RESERVED
        assert reserved_ids() == [old.data["order_id"], new.data["order_id"]]
        assert stock_by_warehouse(hammer.pk) == {"default": (6, 6)}
        assert stock_ledger_mismatches() == []

    def test_a_big_order_not_overdue_does_not_block_a_later_small_one(self, make_product):
        hammer = make_product(on_hand=0, allow_backorder=True)
        big = order([(hammer.pk, 5)])
        small = order([(hammer.pk, 2)])

        add_stock(hammer.pk, 3)

        assert status(small) == Reservation.Status.RESERVED
        assert status(big) == Reservation.Status.BACKORDERED
        assert missing(big) == {hammer.pk: 5}  # all or nothing: it took none of the 3
        assert stock_by_warehouse(hammer.pk) == {"default": (3, 2)}
        add_stock(hammer.pk, 4)
        assert status(big) == Reservation.Status.RESERVED
        assert reserved_ids() == [small.data["order_id"], big.data["order_id"]]

    def test_an_order_waiting_on_two_products_completes_when_both_arrive(self, make_product):
        hammer = make_product(on_hand=0, allow_backorder=True)
        nails = make_product(on_hand=0, allow_backorder=True)
        envelope = order([(hammer.pk, 1), (nails.pk, 2)])

        add_stock(hammer.pk, 1)
        assert missing(envelope) == {hammer.pk: 1, nails.pk: 2}
        add_stock(nails.pk, 2)

        assert status(envelope) == Reservation.Status.RESERVED
        assert stock_ledger_mismatches() == []

    def test_a_transfer_into_an_active_warehouse_serves_the_list(
        self, make_product, make_warehouse
    ):
        make_warehouse("closed", active=False)
        hammer = make_product(on_hand=0, allow_backorder=True)
        add_stock(hammer.pk, 2, "closed")  # not sellable there: the order still waits
        envelope = order([(hammer.pk, 2)])
        assert status(envelope) == Reservation.Status.BACKORDERED

        stock_transfer(
            product_id=hammer.pk,
            source="closed",
            destination="default",
            quantity=2,
            reason="reopened",
            actor_id=STAFF_ID,
            correlation_id="test",
        )

        assert status(envelope) == Reservation.Status.RESERVED
        assert stock_by_warehouse(hammer.pk) == {"default": (2, 2), "closed": (0, 0)}


class TestCancel:
    def test_cancelling_a_backordered_order_releases_what_it_holds_and_serves_others(
        self, make_product
    ):
        hammer = make_product(on_hand=2, allow_backorder=True)
        first = order([(hammer.pk, 4)])  # holds 2, misses 2
        second = order([(hammer.pk, 2)])  # holds 0, misses 2

        on_order_cancelled(factories.order_cancelled(first.data["order_id"]))

        assert status(first) == Reservation.Status.RELEASED
        assert missing(first) == {}
        assert status(second) == Reservation.Status.RESERVED  # the released 2 served it
        [released] = published("stock.released")
        assert released.data["order_id"] == first.data["order_id"]
        release = StockLedgerEntry.objects.get(kind="release", product=hammer)
        assert release.delta_reserved == -2
        assert stock_by_warehouse(hammer.pk) == {"default": (2, 2)}
        assert stock_ledger_mismatches() == []

    def test_cancelling_a_backordered_order_that_holds_nothing(self, make_product):
        hammer = make_product(on_hand=0, allow_backorder=True)
        envelope = order([(hammer.pk, 4)])

        on_order_cancelled(factories.order_cancelled(envelope.data["order_id"]))

        assert status(envelope) == Reservation.Status.RELEASED
        assert Backorder.objects.count() == 0
        add_stock(hammer.pk, 4)
        assert status(envelope) == Reservation.Status.RELEASED
        assert stock_by_warehouse(hammer.pk) == {"default": (4, 0)}

    def test_cancelling_a_reserved_order_serves_the_waiting_list(self, make_product):
        hammer = make_product(on_hand=3, allow_backorder=True)
        reserved = order([(hammer.pk, 3)])
        waiting = order([(hammer.pk, 2)])

        on_order_cancelled(factories.order_cancelled(reserved.data["order_id"]))

        assert status(waiting) == Reservation.Status.RESERVED
        assert stock_by_warehouse(hammer.pk) == {"default": (3, 2)}


class TestPasses:
    def test_a_pass_run_twice_changes_nothing_the_second_time(self, make_product):
        hammer = make_product(on_hand=0, allow_backorder=True)
        old = order([(hammer.pk, 5)])
        age(old, OVERDUE)
        young = [order([(hammer.pk, 2)]) for _ in range(2)]
        add_stock(hammer.pk, 3)
        before = (
            list(StockLedgerEntry.objects.values_list("id", flat=True)),
            sorted(Backorder.objects.values_list("reservation_id", "product_id", "missing")),
            [status(e) for e in [old, *young]],
        )

        assert backorders.backorders_serve(product_ids=[hammer.pk]) == []
        assert backorders.backorders_serve(product_ids=[hammer.pk]) == []

        after = (
            list(StockLedgerEntry.objects.values_list("id", flat=True)),
            sorted(Backorder.objects.values_list("reservation_id", "product_id", "missing")),
            [status(e) for e in [old, *young]],
        )
        assert after == before

    def test_a_pass_that_fails_midway_leaves_nothing_and_the_retry_serves_once(
        self, make_product, monkeypatch
    ):
        hammer = make_product(on_hand=0, allow_backorder=True)
        envelopes = [order([(hammer.pk, 1)]) for _ in range(5)]
        real = backorders.publish_event
        calls = []

        def crash_on_the_third(*args, **kwargs):
            calls.append(args[0])
            if len(calls) == 3:
                raise RuntimeError("the worker died here")
            return real(*args, **kwargs)

        monkeypatch.setattr(backorders, "publish_event", crash_on_the_third)
        with pytest.raises(RuntimeError):
            add_stock(hammer.pk, 4)  # two orders served, then the crash

        assert stock_by_warehouse(hammer.pk) == {"default": (0, 0)}
        assert {status(e) for e in envelopes} == {Reservation.Status.BACKORDERED}
        assert reserved_ids() == []
        assert StockLedgerEntry.objects.filter(kind="reserve").count() == 0

        monkeypatch.setattr(backorders, "publish_event", real)
        add_stock(hammer.pk, 4)

        ids = [e.data["order_id"] for e in envelopes]
        assert reserved_ids() == ids[:4]
        assert [status(e) for e in envelopes] == ["RESERVED"] * 4 + ["BACKORDERED"]
        assert StockLedgerEntry.objects.filter(kind="reserve").count() == 4
        assert stock_ledger_mismatches() == []

    def test_an_order_naming_a_product_the_pass_did_not_lock_is_left_for_the_job(
        self, make_product
    ):
        hammer = make_product(on_hand=0, allow_backorder=True)
        nails = make_product(on_hand=0, allow_backorder=True)
        envelope = order([(hammer.pk, 1), (nails.pk, 1)])
        add_stock(nails.pk, 1)
        assert missing(envelope) == {hammer.pk: 1, nails.pk: 1}

        # A delivery of hammers whose pass locked hammers only, as one that read its products
        # before this order arrived would have: the order names nails, so it is not served.
        levels = movements.lock_levels([hammer.pk])
        movements.apply(levels, {k: (1, 0) for k in levels}, kind="adjustment", reason="in")
        assert backorders.serve(levels, {hammer.pk}) == []
        assert status(envelope) == Reservation.Status.BACKORDERED
        assert list(BackorderWake.objects.values_list("product_id", flat=True)) == [hammer.pk]
        assert backorders.products_needing_a_pass() == [hammer.pk]

        assert backorders.backorders_pass() == 1

        assert status(envelope) == Reservation.Status.RESERVED
        assert BackorderWake.objects.count() == 0
        assert backorders.backorders_pass() == 0
        assert stock_ledger_mismatches() == []

    def test_the_job_lets_an_order_that_became_overdue_take_what_is_left(self, make_product):
        hammer = make_product(on_hand=0, allow_backorder=True)
        big = order([(hammer.pk, 5)])
        add_stock(hammer.pk, 3)  # all or nothing: it takes none
        assert missing(big) == {hammer.pk: 5}
        assert backorders.products_needing_a_pass() == []

        age(big, OVERDUE)
        assert backorders.products_needing_a_pass() == [hammer.pk]
        assert backorders.backorders_pass() == 0  # what the worker's job runs

        assert missing(big) == {hammer.pk: 2}
        assert stock_by_warehouse(hammer.pk) == {"default": (3, 3)}
        assert backorders.products_needing_a_pass() == []  # nothing left to take
        assert stock_ledger_mismatches() == []


def test_orders_served_that_leave_a_product_low_announce_it(make_product):
    hammer = make_product(on_hand=5, allow_backorder=True, low_stock_threshold=3)
    order([(hammer.pk, 8)])  # takes the 5: available 5 -> 0, under 3
    assert [e.data["available"] for e in published("stock.low")] == [0]
    order([(hammer.pk, 4)])  # waits behind it

    add_stock(hammer.pk, 10)  # 10 available, then 3 + 4 taken: 3 left, not under 3
    assert [e.data["available"] for e in published("stock.low")] == [0]
    add_stock(hammer.pk, 5)  # nobody waits any more: 8 available

    order([(hammer.pk, 10)])  # holds the 8 (8 -> 0), waits for 2
    add_stock(hammer.pk, 6)  # 6 available, 2 taken: 4 left
    order([(hammer.pk, 7)])  # holds the 4 (4 -> 0), waits for 3
    add_stock(hammer.pk, 5)  # 5 available, 3 taken: 2 left, under 3

    assert [e.data["available"] for e in published("stock.low")] == [0, 0, 0, 2]
