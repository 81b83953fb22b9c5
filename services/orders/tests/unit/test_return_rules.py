"""The rules of returns, without a database: the window, what may be returned and received,
and the refund."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from errors import ErrorCode
from orders.placement import LineRequest
from orders.return_rules import (
    ReceivedLine,
    ReturnNotAllowed,
    received_units,
    refund,
    requested_units,
    returnable,
    window_open,
)

SHIPPED_AT = datetime(2026, 1, 1, tzinfo=UTC)


def code_of(error: ValidationError) -> str | None:
    [inner] = error.error_dict["lines"] if hasattr(error, "error_dict") else [error]
    return inner.code


class TestWindow:
    def test_open_until_the_last_day_ends(self) -> None:
        window_open(SHIPPED_AT, days=30, now=SHIPPED_AT + timedelta(days=30))

    def test_closed_after_it(self) -> None:
        with pytest.raises(ReturnNotAllowed) as caught:
            window_open(SHIPPED_AT, days=30, now=SHIPPED_AT + timedelta(days=30, seconds=1))
        assert caught.value.code == ErrorCode.RETURN_WINDOW_CLOSED

    def test_nothing_shipped_nothing_to_return(self) -> None:
        with pytest.raises(ReturnNotAllowed) as caught:
            window_open(None, days=30, now=SHIPPED_AT)
        assert caught.value.code == ErrorCode.NOTHING_SHIPPED


class TestRequestedUnits:
    LEFT = returnable({1: 3, 2: 2, 3: 0}, {1: 1})

    def test_returnable_is_shipped_less_what_is_in_returns(self) -> None:
        assert self.LEFT == {1: 2, 2: 2, 3: 0}

    def test_within_what_is_left(self) -> None:
        lines = [LineRequest(2, 2), LineRequest(1, 2)]
        assert requested_units(lines, self.LEFT) == {2: 2, 1: 2}

    @pytest.mark.parametrize(
        ("lines", "code"),
        [
            ([LineRequest(1, 3)], ErrorCode.MORE_THAN_RETURNABLE),
            ([LineRequest(3, 1)], ErrorCode.MORE_THAN_RETURNABLE),
            ([LineRequest(9, 1)], ErrorCode.PRODUCT_NOT_IN_ORDER),
            ([LineRequest(1, 1), LineRequest(1, 1)], ErrorCode.DUPLICATE_PRODUCT),
            ([LineRequest(1, 0)], ErrorCode.QUANTITY_TOO_SMALL),
            ([LineRequest(1, -1)], ErrorCode.QUANTITY_TOO_SMALL),
            ([], ErrorCode.NOTHING_RETURNED),
        ],
    )
    def test_refused(self, lines: list[LineRequest], code: ErrorCode) -> None:
        with pytest.raises(ValidationError) as caught:
            requested_units(lines, self.LEFT)
        assert code_of(caught.value) == code


class TestReceivedUnits:
    REQUESTED = {1: 2, 2: 1}

    def test_within_what_was_requested(self) -> None:
        lines = [ReceivedLine(1, 1, 1)]
        assert received_units(lines, self.REQUESTED) == {1: ReceivedLine(1, 1, 1)}

    @pytest.mark.parametrize(
        ("lines", "code"),
        [
            ([ReceivedLine(1, 2, 1)], ErrorCode.MORE_THAN_REQUESTED),
            ([ReceivedLine(1, 0, 0)], ErrorCode.NOTHING_RETURNED),
            ([], ErrorCode.NOTHING_RETURNED),
            ([ReceivedLine(3, 1, 0)], ErrorCode.PRODUCT_NOT_IN_RETURN),
            ([ReceivedLine(1, 1, 0), ReceivedLine(1, 1, 0)], ErrorCode.DUPLICATE_PRODUCT),
            ([ReceivedLine(1, -1, 2)], ErrorCode.QUANTITY_TOO_SMALL),
        ],
    )
    def test_refused(self, lines: list[ReceivedLine], code: ErrorCode) -> None:
        with pytest.raises(ValidationError) as caught:
            received_units(lines, self.REQUESTED)
        assert code_of(caught.value) == code


def test_the_refund_is_every_unit_back_at_its_price() -> None:
    received = {1: ReceivedLine(1, 1, 1), 2: ReceivedLine(2, 0, 1)}
    prices = {1: Decimal("12.50"), 2: Decimal("3.25")}

    assert refund(received, prices) == Decimal("28.25")
