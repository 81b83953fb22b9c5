"""Pure rules about availability, kept free of the database so they are quick to test."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

MAX_REASON_LENGTH = 2000  # the events' text fields are capped at this


class Shelf(NamedTuple):
    """What one warehouse holds of one product for sale, and where that warehouse stands."""

    warehouse_id: int
    available: int
    priority: int = 0  # the warehouse's: the larger is allocated from first
    active: bool = True  # the warehouse's: an inactive one is never allocated from


class Offer(NamedTuple):
    """What can be sold of one product right now: its stock in each warehouse."""

    active: bool  # the product's
    shelves: tuple[Shelf, ...] = ()
    allow_backorder: bool = False  # the product's: an order short of it may wait for it

    @property
    def available(self) -> int:
        """What the active warehouses can supply together."""
        return sum(shelf.available for shelf in self.shelves if shelf.active)

    def taken(self, warehouse_id: int, quantity: int) -> Offer:
        """This offer once ``quantity`` units were taken from that warehouse."""
        shelves = tuple(
            shelf._replace(available=shelf.available - quantity)
            if shelf.warehouse_id == warehouse_id
            else shelf
            for shelf in self.shelves
        )
        return self._replace(shelves=shelves)


Key = tuple[int, int]  # (product id, warehouse id)


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
    # Units taken per (product id, warehouse id), in that order; empty when rejected.
    taken: dict[Key, int] = field(default_factory=dict)
    # Backordered: the units still missing per product (it holds ``taken``); else empty.
    waiting: dict[int, int] = field(default_factory=dict)

    @property
    def reserved(self) -> bool:
        return not self.shortfalls

    @property
    def backordered(self) -> bool:
        return bool(self.waiting)


def allocate_in_turn(
    orders: Iterable[Mapping[int, int]], offers: Mapping[int, Offer]
) -> list[Allocation]:
    """Each order in turn, all of it or nothing, against what the orders ahead of it left:
    what reserving them one at a time, in this order, would decide. Where the units of an
    order come from: :func:`choose_warehouses`.

    An order short only of products that are active and allow backorders is not rejected
    but backordered: it takes what there is of each line (:func:`take_available`) and waits
    for the rest.
    """
    left = dict(offers)
    allocations: list[Allocation] = []
    for wanted in orders:
        found = shortfalls(wanted, left)
        before = {pid: left[pid].available for pid in wanted if pid in left}
        taken: dict[Key, int] = {}
        waiting: dict[int, int] = {}
        if not found:
            taken = choose_warehouses(wanted, left)
        elif backorderable(found, left):
            taken = take_available(wanted, left)
            waiting = {s.product_id: s.requested - s.available for s in found}
        for (pid, warehouse_id), quantity in taken.items():
            left[pid] = left[pid].taken(warehouse_id, quantity)
        allocations.append(Allocation(found, before, taken, waiting))
    return allocations


def backorderable(found: Iterable[Shortfall], offers: Mapping[int, Offer]) -> bool:
    """Whether every product an order is short of is known, active and allows backorders."""
    for shortfall in found:
        offer = offers.get(shortfall.product_id)
        if offer is None or not offer.active or not offer.allow_backorder:
            return False
    return True


def take_available(wanted: Mapping[int, int], offers: Mapping[int, Offer]) -> dict[Key, int]:
    """What an order that cannot have everything takes now: each line in turn as much as its
    active warehouses hold, in allocation order (as a split allocation does), up to what it
    wants. Returns the units per (product id, warehouse id), in that order."""
    taken: dict[Key, int] = {}
    for pid, quantity in wanted.items():
        shelves = {s.warehouse_id: s.available for s in offers[pid].shelves if s.active}
        missing = quantity
        for warehouse_id in allocation_order(offers[pid].shelves):
            units = min(missing, max(shelves[warehouse_id], 0))
            if units > 0:
                taken[pid, warehouse_id] = units
                missing -= units
    return dict(sorted(taken.items()))


def choose_warehouses(wanted: Mapping[int, int], offers: Mapping[int, Offer]) -> dict[Key, int]:
    """Where to take an order's units from, given that its active warehouses hold enough.

    One parcel when one active warehouse can supply every line: the first of those in
    allocation order (highest priority, then lowest id). Otherwise each line in turn takes
    what it can from each warehouse in that order, so a line may come from several.
    Returns the units per (product id, warehouse id), in that order.
    """
    stock = {
        pid: {s.warehouse_id: s.available for s in offers[pid].shelves if s.active}
        for pid in wanted
    }
    ranked = allocation_order(shelf for pid in wanted for shelf in offers[pid].shelves)
    for warehouse_id in ranked:
        if all(stock[pid].get(warehouse_id, 0) >= q for pid, q in wanted.items()):
            return {(pid, warehouse_id): q for pid, q in sorted(wanted.items()) if q > 0}
    taken: dict[Key, int] = {}
    for pid, quantity in wanted.items():
        missing = quantity
        for warehouse_id in ranked:
            if missing == 0:
                break
            units = min(missing, stock[pid].get(warehouse_id, 0))
            if units > 0:
                taken[pid, warehouse_id] = units
                missing -= units
        if missing:
            raise ValueError(f"product {pid}: {missing} units more than its warehouses hold")
    return dict(sorted(taken.items()))


def allocation_order(shelves: Iterable[Shelf]) -> list[int]:
    """The ids of the active warehouses among these shelves, in the order they are allocated
    from: the highest priority first, then the lowest id."""
    ranks = {s.warehouse_id: (-s.priority, s.warehouse_id) for s in shelves if s.active}
    return sorted(ranks, key=ranks.__getitem__)


def rejection_reason(found: list[Shortfall], line_count: int) -> str:
    details = "; ".join(f"product {s.product_id}: {s.reason}" for s in found)
    summary = f"{len(found)} of {line_count} lines cannot be reserved: {details}"
    if len(summary) <= MAX_REASON_LENGTH:
        return summary
    return summary[: MAX_REASON_LENGTH - 3] + "..."


def crossed_low_threshold(*, before: int, after: int, threshold: int) -> bool:
    """True when available stock has just dropped under the threshold, not on every dip."""
    return before >= threshold > after


class ShipmentRefused(ValueError):
    """A shipment asks for units the reservation does not hold there, or has shipped already."""


def shipment_units(
    left: Mapping[Key, int], lines: Mapping[int, int], warehouse_id: int | None
) -> dict[Key, int]:
    """The units per (product id, warehouse id) that a shipment takes from what a reservation
    holds and has not shipped (``left``): ``lines`` (units per product; empty: everything
    left) from ``warehouse_id`` (None: from each product's rows in turn, in key order).

    Raises :class:`ShipmentRefused` for a product not held there, more units than are left
    there, or a shipment of nothing."""
    rows = {key: units for key, units in sorted(left.items()) if units > 0}
    if warehouse_id is not None:
        rows = {key: units for key, units in rows.items() if key[1] == warehouse_id}
    if not lines:
        if not rows:
            raise ShipmentRefused("nothing is left to ship there")
        return rows
    taken: dict[Key, int] = {}
    for product_id, quantity in sorted(lines.items()):
        mine = {key: units for key, units in rows.items() if key[0] == product_id}
        held = sum(mine.values())
        if not mine:
            raise ShipmentRefused(f"product {product_id} is not held there for this order")
        if quantity > held:
            raise ShipmentRefused(
                f"{quantity} units of product {product_id} to ship, {held} held there and "
                "not shipped yet"
            )
        for key, units in mine.items():
            if quantity == 0:
                break
            taken[key] = min(units, quantity)
            quantity -= taken[key]
    return taken
