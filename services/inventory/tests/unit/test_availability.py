from stock.availability import (
    Allocation,
    Offer,
    Shortfall,
    allocate_in_turn,
    crossed_low_threshold,
    merge_lines,
    rejection_reason,
    shortfalls,
)


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
        assert shortfalls({1: 3, 2: 1}, {1: Offer(3, True), 2: Offer(10, True)}) == []

    def test_each_failing_line_says_why(self):
        offers = {1: Offer(2, True), 2: Offer(5, False), 3: Offer(7, True)}
        found = shortfalls({1: 3, 2: 1, 3: 7, 4: 1}, offers)
        assert found == [
            Shortfall(1, 3, 2, "only 2 available"),
            Shortfall(2, 1, 5, "product is inactive"),
            Shortfall(4, 1, 0, "unknown product"),
        ]


class TestAllocateInTurn:
    def test_each_order_gets_what_the_orders_ahead_of_it_left(self):
        offers = {1: Offer(5, True), 2: Offer(1, True)}
        orders = [{1: 3}, {1: 3}, {1: 2, 2: 1}, {2: 1}]

        assert allocate_in_turn(orders, offers) == [
            Allocation([], {1: 5}),
            Allocation([Shortfall(1, 3, 2, "only 2 available")], {1: 2}),
            Allocation([], {1: 2, 2: 1}),
            Allocation([Shortfall(2, 1, 0, "only 0 available")], {2: 0}),
        ]

    def test_a_rejected_order_takes_nothing_not_even_its_lines_that_fit(self):
        offers = {1: Offer(2, True), 2: Offer(0, True)}

        allocations = allocate_in_turn([{1: 2, 2: 1}, {1: 2}], offers)

        assert [a.reserved for a in allocations] == [False, True]

    def test_unknown_and_inactive_products_reject_their_order(self):
        offers = {1: Offer(5, False)}

        [inactive, unknown] = allocate_in_turn([{1: 1}, {9: 1}], offers)

        assert inactive.shortfalls == [Shortfall(1, 1, 5, "product is inactive")]
        assert unknown == Allocation([Shortfall(9, 1, 0, "unknown product")], {})


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
