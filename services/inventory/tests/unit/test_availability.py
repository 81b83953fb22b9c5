import pytest

from stock.availability import (
    Allocation,
    Offer,
    Shelf,
    ShipmentRefused,
    Shortfall,
    allocate_in_turn,
    allocation_order,
    choose_warehouses,
    crossed_low_threshold,
    merge_lines,
    rejection_reason,
    shipment_units,
    shortfalls,
)

# Warehouse ids of the examples below.
MAIN, EAST, WEST = 1, 2, 3


def stocked(available: int, active: bool = True) -> Offer:
    """A product kept in one warehouse, as everything was before there were several."""
    return Offer(active, (Shelf(MAIN, available),))


def spread(*shelves: Shelf, active: bool = True) -> Offer:
    return Offer(active, shelves)


class TestMergeLines:
    def test_sums_a_repeated_product_and_sorts_by_product_id(self):
        lines = [
            {"product_id": 9, "quantity": 1},
            {"product_id": 2, "quantity": 3},
            {"product_id": 9, "quantity": 4},
        ]
        assert list(merge_lines(lines).items()) == [(2, 3), (9, 5)]


class TestShortfalls:
    def test_an_order_that_fits_has_none(self):
        assert shortfalls({1: 3, 2: 1}, {1: stocked(3), 2: stocked(10)}) == []

    def test_each_failing_line_says_why(self):
        offers = {1: stocked(2), 2: stocked(5, active=False), 3: stocked(7)}
        found = shortfalls({1: 3, 2: 1, 3: 7, 4: 1}, offers)
        assert found == [
            Shortfall(1, 3, 2, "only 2 available"),
            Shortfall(2, 1, 5, "product is inactive"),
            Shortfall(4, 1, 0, "unknown product"),
        ]

    def test_what_is_available_is_summed_over_the_active_warehouses_only(self):
        offer = spread(Shelf(MAIN, 2), Shelf(EAST, 3), Shelf(WEST, 50, active=False))

        assert offer.available == 5
        assert shortfalls({1: 6}, {1: offer}) == [Shortfall(1, 6, 5, "only 5 available")]
        assert shortfalls({1: 5}, {1: offer}) == []


class TestAllocateInTurn:
    def test_each_order_gets_what_the_orders_ahead_of_it_left(self):
        offers = {1: stocked(5), 2: stocked(1)}
        orders = [{1: 3}, {1: 3}, {1: 2, 2: 1}, {2: 1}]

        assert allocate_in_turn(orders, offers) == [
            Allocation([], {1: 5}, {(1, MAIN): 3}),
            Allocation([Shortfall(1, 3, 2, "only 2 available")], {1: 2}),
            Allocation([], {1: 2, 2: 1}, {(1, MAIN): 2, (2, MAIN): 1}),
            Allocation([Shortfall(2, 1, 0, "only 0 available")], {2: 0}),
        ]

    def test_a_rejected_order_takes_nothing_not_even_its_lines_that_fit(self):
        offers = {1: stocked(2), 2: stocked(0)}

        allocations = allocate_in_turn([{1: 2, 2: 1}, {1: 2}], offers)

        assert [a.reserved for a in allocations] == [False, True]
        assert [a.taken for a in allocations] == [{}, {(1, MAIN): 2}]

    def test_unknown_and_inactive_products_reject_their_order(self):
        offers = {1: stocked(5, active=False)}

        [inactive, unknown] = allocate_in_turn([{1: 1}, {9: 1}], offers)

        assert inactive.shortfalls == [Shortfall(1, 1, 5, "product is inactive")]
        assert unknown == Allocation([Shortfall(9, 1, 0, "unknown product")], {})

    def test_an_inactive_product_is_rejected_whatever_its_warehouses_hold(self):
        offers = {1: spread(Shelf(MAIN, 5), Shelf(EAST, 5), active=False)}

        [allocation] = allocate_in_turn([{1: 1}], offers)

        assert allocation == Allocation([Shortfall(1, 1, 10, "product is inactive")], {1: 10})

    def test_orders_split_over_warehouses_leave_each_what_they_did_not_take(self):
        # EAST first (priority 5): 3 there, 4 in MAIN (priority 1).
        offers = {1: spread(Shelf(MAIN, 4, priority=1), Shelf(EAST, 3, priority=5))}

        allocations = allocate_in_turn([{1: 2}, {1: 2}, {1: 3}, {1: 1}], offers)

        assert [a.taken for a in allocations] == [
            {(1, EAST): 2},  # one parcel from EAST
            {(1, MAIN): 2},  # EAST has 1 left: MAIN can send both
            {(1, MAIN): 2, (1, EAST): 1},  # neither alone: EAST first, then MAIN
            {},
        ]
        assert [a.available_before for a in allocations] == [{1: 7}, {1: 5}, {1: 3}, {1: 0}]
        assert allocations[3].shortfalls == [Shortfall(1, 1, 0, "only 0 available")]

    def test_the_last_units_spread_over_two_warehouses_all_go(self):
        offers = {1: spread(Shelf(MAIN, 1), Shelf(EAST, 1)), 2: spread(Shelf(EAST, 1))}

        allocations = allocate_in_turn([{1: 1, 2: 1}, {1: 1}, {1: 1}], offers)

        assert [a.taken for a in allocations] == [{(1, EAST): 1, (2, EAST): 1}, {(1, MAIN): 1}, {}]


class TestChooseWarehouses:
    def test_one_parcel_from_the_highest_priority_warehouse_that_has_every_line(self):
        offers = {
            1: spread(Shelf(MAIN, 9, priority=9), Shelf(EAST, 5, priority=3), Shelf(WEST, 5)),
            2: spread(Shelf(EAST, 2, priority=3), Shelf(WEST, 2)),
        }

        # MAIN comes first but lacks product 2; EAST and WEST both have it all: EAST ranks higher
        assert choose_warehouses({1: 4, 2: 2}, offers) == {(1, EAST): 4, (2, EAST): 2}

    def test_one_parcel_even_when_a_higher_priority_warehouse_could_supply_some_lines(self):
        offers = {
            1: spread(Shelf(MAIN, 5, priority=9), Shelf(WEST, 5)),
            2: spread(Shelf(MAIN, 1, priority=9), Shelf(WEST, 5)),
        }

        assert choose_warehouses({1: 2, 2: 2}, offers) == {(1, WEST): 2, (2, WEST): 2}

    def test_a_split_takes_each_line_in_priority_order(self):
        offers = {
            1: spread(Shelf(MAIN, 2, priority=1), Shelf(EAST, 3, priority=7), Shelf(WEST, 1)),
            2: spread(Shelf(MAIN, 1, priority=1), Shelf(WEST, 1)),
        }

        # nobody has 6 of product 1: EAST 3, then MAIN 2, then WEST 1; product 2 from MAIN
        assert choose_warehouses({1: 6, 2: 1}, offers) == {
            (1, MAIN): 2,
            (1, EAST): 3,
            (1, WEST): 1,
            (2, MAIN): 1,
        }

    def test_a_priority_tie_goes_to_the_lowest_warehouse_id(self):
        offers = {1: spread(Shelf(WEST, 5, priority=2), Shelf(EAST, 5, priority=2))}

        assert choose_warehouses({1: 1}, offers) == {(1, EAST): 1}
        assert choose_warehouses({1: 7}, offers) == {(1, EAST): 5, (1, WEST): 2}

    def test_an_inactive_warehouse_is_never_allocated_from(self):
        offers = {1: spread(Shelf(MAIN, 10, priority=9, active=False), Shelf(EAST, 1))}

        assert choose_warehouses({1: 1}, offers) == {(1, EAST): 1}
        [rejected] = allocate_in_turn([{1: 2}], offers)
        assert rejected.shortfalls == [Shortfall(1, 2, 1, "only 1 available")]

    def test_negative_priorities_rank_below_zero(self):
        offers = {1: spread(Shelf(MAIN, 5, priority=-1), Shelf(EAST, 5))}

        assert choose_warehouses({1: 1}, offers) == {(1, EAST): 1}

    def test_more_than_the_warehouses_hold_is_a_programming_error(self):
        with pytest.raises(ValueError, match="1 units more"):
            choose_warehouses({1: 3}, {1: spread(Shelf(MAIN, 2))})


class TestAllocationOrder:
    def test_active_warehouses_by_priority_then_id(self):
        shelves = [
            Shelf(WEST, 0, priority=5),
            Shelf(MAIN, 0, priority=1),
            Shelf(EAST, 0, priority=5),
            Shelf(4, 0, priority=99, active=False),
        ]
        assert allocation_order(shelves) == [EAST, WEST, MAIN]


class TestRejectionReason:
    def test_names_every_failing_product(self):
        found = [Shortfall(1, 3, 2, "only 2 available"), Shortfall(4, 1, 0, "unknown product")]
        assert rejection_reason(found, 3) == (
            "2 of 3 lines cannot be reserved: product 1: only 2 available; "
            "product 4: unknown product"
        )

    def test_fits_in_the_event_text_limit(self):
        found = [Shortfall(n, 1, 0, "unknown product") for n in range(1, 501)]
        reason = rejection_reason(found, 500)
        assert len(reason) == 2000
        assert reason.endswith("...")


class TestCrossedLowThreshold:
    def test_fires_when_available_drops_under_the_threshold(self):
        assert crossed_low_threshold(before=5, after=4, threshold=5)

    def test_stays_quiet_above_the_threshold(self):
        assert not crossed_low_threshold(before=9, after=5, threshold=5)

    def test_stays_quiet_when_it_was_already_low(self):
        assert not crossed_low_threshold(before=4, after=2, threshold=5)

    def test_a_zero_threshold_never_fires(self):
        assert not crossed_low_threshold(before=1, after=0, threshold=0)


class TestShipmentUnits:
    # Product 7: 3 left in MAIN, 2 in EAST; product 8: 1 in EAST; product 9: all shipped.
    LEFT = {(7, MAIN): 3, (7, EAST): 2, (8, EAST): 1, (9, MAIN): 0}

    def test_takes_the_lines_from_the_named_warehouse_only(self):
        assert shipment_units(self.LEFT, {7: 2, 8: 1}, EAST) == {(7, EAST): 2, (8, EAST): 1}

    def test_no_lines_takes_everything_left_there(self):
        assert shipment_units(self.LEFT, {}, EAST) == {(7, EAST): 2, (8, EAST): 1}
        assert shipment_units(self.LEFT, {}, None) == {(7, MAIN): 3, (7, EAST): 2, (8, EAST): 1}

    def test_no_warehouse_takes_each_products_rows_in_turn(self):
        assert shipment_units(self.LEFT, {7: 4}, None) == {(7, MAIN): 3, (7, EAST): 1}

    def test_refuses_more_than_is_left_there(self):
        with pytest.raises(ShipmentRefused, match="3 units of product 7 to ship, 2 held there"):
            shipment_units(self.LEFT, {7: 3}, EAST)

    def test_refuses_a_product_not_held_there_or_shipped_already(self):
        with pytest.raises(ShipmentRefused, match="product 8 is not held there"):
            shipment_units(self.LEFT, {8: 1}, MAIN)
        with pytest.raises(ShipmentRefused, match="product 9 is not held there"):
            shipment_units(self.LEFT, {9: 1}, MAIN)

    def test_refuses_a_shipment_of_nothing(self):
        with pytest.raises(ShipmentRefused, match="nothing is left to ship there"):
            shipment_units(self.LEFT, {}, WEST)


def waits(*shelves: Shelf) -> Offer:
    """A product that allows backorders."""
    return Offer(True, shelves, allow_backorder=True)


class TestBackordering:
    def test_an_order_short_only_of_backorderable_products_takes_what_there_is_and_waits(self):
        offers = {1: waits(Shelf(MAIN, 1), Shelf(EAST, 2, priority=5)), 2: stocked(10)}

        [allocation] = allocate_in_turn([{1: 5, 2: 4}], offers)

        assert allocation.backordered and not allocation.reserved
        assert allocation.waiting == {1: 2}
        assert allocation.taken == {(1, MAIN): 1, (1, EAST): 2, (2, MAIN): 4}

    def test_short_of_one_product_without_backorders_is_rejected(self):
        offers = {1: waits(Shelf(MAIN, 0)), 2: stocked(1)}

        [allocation] = allocate_in_turn([{1: 1, 2: 2}], offers)

        assert not allocation.backordered and not allocation.reserved
        assert allocation.taken == {}

    def test_an_inactive_or_unknown_product_is_never_backordered(self):
        inactive = Offer(False, (Shelf(MAIN, 0),), allow_backorder=True)

        assert not allocate_in_turn([{1: 1}], {1: inactive})[0].backordered
        assert not allocate_in_turn([{9: 1}], {})[0].backordered

    def test_the_orders_after_a_backordered_one_see_what_it_took(self):
        offers = {1: waits(Shelf(MAIN, 3))}

        first, second = allocate_in_turn([{1: 5}, {1: 1}], offers)

        assert (first.taken, first.waiting) == ({(1, MAIN): 3}, {1: 2})
        assert (second.taken, second.waiting) == ({}, {1: 1})

    def test_an_inactive_warehouse_is_not_taken_from(self):
        offers = {1: waits(Shelf(MAIN, 1), Shelf(EAST, 5, active=False))}

        [allocation] = allocate_in_turn([{1: 3}], offers)

        assert (allocation.taken, allocation.waiting) == ({(1, MAIN): 1}, {1: 2})
