"""Pure rules about availability, kept free of the database so they are quick to test."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

MAX_REASON_LENGTH = 2000  # the events' text fields are capped at this


class Offer(NamedTuple):
    """What can be sold of one product right now."""

    available: int
    active: bool


@dataclass(frozen=True)
class Shortfall:
    """Why one line of an order cannot be reserved."""

    product_id: int
    requested: int
    available: int
    reason: str

    def as_event_line(self) -> dict[str, int | str]:
        return {
            "product_id": self.product_id,
            "requested": self.requested,
            "available": self.available,
            "reason": self.reason,
        }


def merge_lines(lines: Iterable[Mapping[str, int]]) -> dict[int, int]:
    """Quantity wanted per product id, in product id order; a repeated product is summed."""
    wanted: dict[int, int] = {}
    for line in lines:
        product_id = int(line["product_id"])
        wanted[product_id] = wanted.get(product_id, 0) + int(line["quantity"])
    return dict(sorted(wanted.items()))


def shortfalls(wanted: Mapping[int, int], offers: Mapping[int, Offer]) -> list[Shortfall]:
    """Every line that cannot be reserved as asked; empty when the whole order fits."""
    found: list[Shortfall] = []
    for product_id, quantity in wanted.items():
        offer = offers.get(product_id)
        if offer is None:
            found.append(Shortfall(product_id, quantity, 0, "unknown product"))
        elif not offer.active:
            found.append(Shortfall(product_id, quantity, offer.available, "product is inactive"))
        elif quantity > offer.available:
            reason = f"only {offer.available} available"
            found.append(Shortfall(product_id, quantity, offer.available, reason))
    return found


def rejection_reason(found: list[Shortfall], line_count: int) -> str:
    details = "; ".join(f"product {s.product_id}: {s.reason}" for s in found)
    summary = f"{len(found)} of {line_count} lines cannot be reserved: {details}"
    if len(summary) <= MAX_REASON_LENGTH:
        return summary
    return summary[: MAX_REASON_LENGTH - 3] + "..."


def crossed_low_threshold(*, before: int, after: int, threshold: int) -> bool:
    """True when available stock has just dropped under the threshold, not on every dip."""
    return before >= threshold > after
