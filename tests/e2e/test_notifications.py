"""What customers are told, in the app and by e-mail, over the real system."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.client import Api
from tests.e2e.conftest import E2E


def notifications(api: Api) -> list[dict[str, Any]]:
    response = api.get(f"{api.users}/api/notifications/", page_size=100)
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what} after {timeout}s"
        time.sleep(0.05)


def kinds(api: Api, order_id: str | None) -> list[str]:
    return sorted(n["kind"] for n in notifications(api) if n["order_id"] == order_id)


class TestOrderNotifications:
    def test_placed_confirmed_shipped_gives_the_owner_two_and_nobody_else_any(
        self, e2e: E2E, staff: Api, customer: Api
    ) -> None:
        other = e2e.anonymous.register()
        product = staff.create_product(price="12.50", stock=5)
        placed = customer.place_order([{"product_id": product["id"], "quantity": 2}])
        assert placed.status_code == 202, placed.text
        order_id = placed.json()["id"]

        customer.wait_for_status(order_id, {"CONFIRMED"})
        confirmed_at = time.monotonic()
        wait_for(lambda: "order_confirmed" in kinds(customer, order_id), "the confirmation")
        assert time.monotonic() - confirmed_at < 5
        shipped = staff.post(f"{staff.orders}/api/orders/{order_id}/ship/")
        assert shipped.status_code == 200, shipped.text
        wait_for(lambda: "order_shipped" in kinds(customer, order_id), "the shipment")
        wait_for(lambda: kinds(other, None) == ["welcome"], "the other customer's welcome")
        time.sleep(1.0)  # a duplicate or a stray notification would have arrived by now

        # Told of the outcome, not of the order's arrival as well (docs/events.md).
        assert kinds(customer, order_id) == ["order_confirmed", "order_shipped"]
        assert kinds(customer, None) == ["welcome"]
        assert len(notifications(customer)) == 3
        assert [n["kind"] for n in notifications(other)] == ["welcome"]

    def test_the_confirmation_is_e_mailed_to_the_owner(
        self, e2e: E2E, staff: Api, customer: Api
    ) -> None:
        product = staff.create_product(price="3.00", stock=5)
        order_id = customer.place_order([{"product_id": product["id"], "quantity": 1}]).json()["id"]
        customer.wait_for_status(order_id, {"CONFIRMED"})
        address = customer.get(f"{customer.users}/api/users/me/").json()["email"]
        mail_dir = Path(e2e.system.env["EMAIL_FILE_PATH"])

        def confirmation() -> str | None:
            for path in sorted(mail_dir.glob("*.log")) if mail_dir.is_dir() else []:
                for message in path.read_text().split("-" * 79):
                    if f"Subject: Order {order_id} confirmed" in message:
                        return message
            return None

        wait_for(lambda: confirmation() is not None, "the confirmation e-mail")
        message = confirmation()
        assert message is not None
        assert f"To: {address}" in message
        assert "Total: 3.00" in message
