"""The order driver's own choices, without a system: what it schedules after an order, and the
trickle of orders that keeps an armed crash point reachable after the run's own orders."""

from __future__ import annotations

import threading
import time
from typing import Any
from unittest import mock

import pytest

from tests.chaos.driver import OrderDriver
from tests.e2e.client import Api

URLS = {"inventory": "http://inventory", "orders": "http://orders", "user-notification": "http://u"}


@pytest.fixture
def driver() -> OrderDriver:
    with mock.patch.object(Api, "as_user", lambda self, *_: self):  # no token server here
        made = OrderDriver(URLS, "staff", "password", seed=1, backorder_products=1)
    made.products = [11, 12]
    made.backorderable = [11]
    made.customers = [(made.anonymous, 7)]
    return made


class _Rolls:
    """A ``random.Random`` whose ``random()`` gives ``roll`` and whose other draws are plain."""

    def __init__(self, roll: float, product: int) -> None:
        self.roll, self.product = roll, product

    def random(self) -> float:
        return self.roll

    def choice(self, seq: Any) -> Any:
        return 1 if seq == (1, 2) else seq[0]

    def sample(self, seq: Any, k: int) -> list[Any]:
        return [self.product]

    def randint(self, a: int, b: int) -> int:
        return a

    def uniform(self, a: float, b: float) -> float:
        return a


def _placed(driver: OrderDriver, roll: float, product: int) -> list[tuple[str, float]]:
    """Place one order (answered 202) with these draws: its follow-ups, (action, delay)."""
    driver.random = _Rolls(roll, product)  # type: ignore[assignment]
    answer = ("202", {"id": "order-1"})
    with mock.patch.object(OrderDriver, "_post_with_retries", return_value=answer):
        before = time.monotonic()
        driver._place_one()
    return [(action, due - before) for due, _, action, _ in driver._followups]


def test_a_customer_of_a_backorderable_product_may_cancel_late(driver: OrderDriver) -> None:
    roll = driver.cancel_share + driver.ship_share + driver.late_cancel_share / 2
    [(action, delay)] = _placed(driver, roll, product=11)
    assert action == "cancel" and 4.0 <= delay < 4.5


def test_other_customers_do_not(driver: OrderDriver) -> None:
    roll = driver.cancel_share + driver.ship_share + driver.late_cancel_share / 2
    assert _placed(driver, roll, product=12) == []


def test_early_cancellations_are_unchanged(driver: OrderDriver) -> None:
    [(action, delay)] = _placed(driver, driver.cancel_share / 2, product=11)
    assert action == "cancel" and delay < 0.5


def test_the_trickle_places_orders_only_after_the_planned_ones(driver: OrderDriver) -> None:
    placed = threading.Event()
    calls: list[bool] = []

    def place_one() -> None:
        calls.append(driver.placing_done)
        placed.set()

    with mock.patch.object(driver, "_place_one", place_one), driver.trickle(rate=100.0):
        time.sleep(0.1)
        assert calls == []  # the planned orders are still being sent
        driver._placing_done.set()
        assert placed.wait(2.0)
    after = len(calls)
    time.sleep(0.1)
    assert after >= 1 and len(calls) == after  # none once the block ended
    assert all(calls) and driver.stats.trickled == after
