"""The rules of returns, as pure functions: what may be returned, what may be received, and
what a received return is worth. :mod:`orders.returns` reads and writes around them.

A refused request raises ``service_runtime.errors.refused`` naming the field (a 400); a
return the order's state does not allow raises :class:`ReturnNotAllowed` (a 409).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from errors import ErrorCode
from orders.line_rules import each_product_once, units_of_the_order
from orders.placement import LineRequest
from service_runtime.errors import refused


class ReturnNotAllowed(Exception):
    """The order, or the return, is not in a state that allows this; ``code`` says why."""

    def __init__(self, message: str, *, code: ErrorCode) -> None:
        super().__init__(message)
        self.code = code


class ReceivedLine(NamedTuple):
    """Units of one product of a return as staff received them."""

    product_id: int
    restocked: int  # back on hand
    damaged: int  # written off


def window_open(last_shipped_at: datetime | None, *, days: int, now: datetime) -> None:
    """A return may be asked for until ``days`` after the order's last shipment; nothing
    shipped, nothing to return."""
    if last_shipped_at is None:
        raise ReturnNotAllowed(
            "Nothing of this order has shipped: there is nothing to return.",
            code=ErrorCode.NOTHING_SHIPPED,
        )
    closed_at = last_shipped_at + timedelta(days=days)
    if now > closed_at:
        raise ReturnNotAllowed(
            f"The return window of this order closed at {closed_at.isoformat()} "
            f"({days} days after its last shipment).",
            code=ErrorCode.RETURN_WINDOW_CLOSED,
        )


def returnable(shipped: Mapping[int, int], in_returns: Mapping[int, int]) -> dict[int, int]:
    """Units that may still be returned, by product: shipped, less those already in a
    return (requested or received)."""
    return {product: units - in_returns.get(product, 0) for product, units in shipped.items()}


def requested_units(lines: Sequence[LineRequest], left: Mapping[int, int]) -> dict[int, int]:
    """The units a return asks for, by product, in the request's order, each checked against
    what is ``left`` to return of the order's lines (every product of the order is a key)."""
    if not lines:
        raise refused("A return needs at least one line.", code=ErrorCode.NOTHING_RETURNED)
    wanted: dict[int, int] = {}
    for where, line in units_of_the_order(lines, left):
        if line.quantity > left[line.product_id]:
            problem = (
                f"{where}: {line.quantity} units of product {line.product_id} to return, "
                f"{max(left[line.product_id], 0)} shipped and not in a return already."
            )
            raise refused(problem, code=ErrorCode.MORE_THAN_RETURNABLE, field="lines")
        wanted[line.product_id] = line.quantity
    return wanted


def received_units(
    lines: Sequence[ReceivedLine], requested: Mapping[int, int]
) -> dict[int, ReceivedLine]:
    """What staff received, by product of the return (a line not named: nothing of it came
    back), each within the units ``requested``; at least one unit in all."""
    received: dict[int, ReceivedLine] = {}
    in_return = each_product_once(
        lines, requested, of="return", missing=ErrorCode.PRODUCT_NOT_IN_RETURN
    )
    for where, line in in_return:
        if line.restocked < 0 or line.damaged < 0:
            problem = f"{where}: restocked and damaged cannot be negative."
            raise refused(problem, code=ErrorCode.QUANTITY_TOO_SMALL, field="lines")
        asked = requested[line.product_id]
        if line.restocked + line.damaged > asked:
            problem = (
                f"{where}: {line.restocked} restocked and {line.damaged} damaged units of "
                f"product {line.product_id} received, {asked} requested."
            )
            raise refused(problem, code=ErrorCode.MORE_THAN_REQUESTED, field="lines")
        received[line.product_id] = line
    if not any(line.restocked + line.damaged for line in received.values()):
        raise refused(
            "A received return has at least one unit, restocked or damaged.",
            code=ErrorCode.NOTHING_RETURNED,
            field="lines",
        )
    return received


def refund(received: Mapping[int, ReceivedLine], unit_prices: Mapping[int, Decimal]) -> Decimal:
    """What a received return is worth: each unit back, restocked or damaged, at the price
    paid for it."""
    return sum(
        (unit_prices[p] * (line.restocked + line.damaged) for p, line in received.items()),
        Decimal("0.00"),
    )
