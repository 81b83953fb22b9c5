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


@dataclass(frozen=True)
class Allocation:
    """What became of one order among several reserved in turn."""

    shortfalls: list[Shortfall]  # empty: every line reserved
    available_before: dict[int, int]  # of its known products, what the orders ahead of it left

    @property
    def reserved(self) -> bool:
        return not self.shortfalls


def allocate_in_turn(
    orders: Iterable[Mapping[int, int]], offers: Mapping[int, Offer]
) -> list[Allocation]:
    """Each order in turn, all of it or nothing, against what the orders ahead of it left:
    what reserving them one at a time, in this order, would decide."""
    left = dict(offers)
    allocations: list[Allocation] = []
    for wanted in orders:
        found = shortfalls(wanted, left)
        before = {pid: left[pid].available for pid in wanted if pid in left}
        if not found:
            for pid, quantity in wanted.items():
                left[pid] = left[pid]._replace(available=left[pid].available - quantity)
        allocations.append(Allocation(found, before))
    return allocations


def rejection_reason(found: list[Shortfall], line_count: int) -> str:
    details = "; ".join(f"product {s.product_id}: {s.reason}" for s in found)
    summary = f"{len(found)} of {line_count} lines cannot be reserved: {details}"
    if len(summary) <= MAX_REASON_LENGTH:
        return summary
    return summary[: MAX_REASON_LENGTH - 3] + "..."


def crossed_low_threshold(*, before: int, after: int, threshold: int) -> bool:
    """True when available stock has just dropped under the threshold, not on every dip."""
    return before >= threshold > after
