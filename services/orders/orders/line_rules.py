"""What every request naming lines of an order (a shipment, a return, a receipt) must hold,
whatever it then checks of its own: each product once, at least one unit, a known product."""

from __future__ import annotations

from collections.abc import Callable, Container, Iterator, Sequence
from typing import Protocol, TypeVar

from errors import ErrorCode
from orders.placement import LineRequest
from service_runtime.errors import refused


class NamesAProduct(Protocol):
    @property
    def product_id(self) -> int: ...


Line = TypeVar("Line", bound=NamesAProduct)


def each_product_once(
    lines: Sequence[Line],
    products: Container[int],
    *,
    of: str,
    missing: ErrorCode,
    units: Callable[[Line], int] | None = None,
) -> Iterator[tuple[str, Line]]:
    """Each line with where it is in the request ("lines[2]"), in order. A refusal naming
    ``lines`` for a product named twice, fewer ``units`` than 1 (when given), or a product
    not one of ``products`` (not in this ``of``: ``missing``)."""
    seen: set[int] = set()
    for position, line in enumerate(lines):
        where = f"lines[{position}]"
        if line.product_id in seen:
            problem = f"{where}: product {line.product_id} appears twice; name it once."
            raise refused(problem, code=ErrorCode.DUPLICATE_PRODUCT, field="lines")
        if units is not None and units(line) < 1:
            problem = f"{where}: the quantity must be at least 1."
            raise refused(problem, code=ErrorCode.QUANTITY_TOO_SMALL, field="lines")
        if line.product_id not in products:
            problem = f"{where}: product {line.product_id} is not in this {of}."
            raise refused(problem, code=missing, field="lines")
        seen.add(line.product_id)
        yield where, line


def units_of_the_order(
    lines: Sequence[LineRequest], products: Container[int]
) -> Iterator[tuple[str, LineRequest]]:
    """:func:`each_product_once` of the order's ``products``, each line of at least one unit."""
    return each_product_once(
        lines,
        products,
        of="order",
        missing=ErrorCode.PRODUCT_NOT_IN_ORDER,
        units=lambda line: line.quantity,
    )
