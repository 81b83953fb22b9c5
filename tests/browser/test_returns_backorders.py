"""Returns and backorders in the web console, in Chromium, on the running system: a customer
asks to return shipped units, staff receive them (restocked and damaged) and see the refund;
backordered orders show their place in the waiting list, and the product's page its list."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.browser.conftest import Console, nav_link, screenshot, sign_in
from tests.e2e.client import Api
from tests.e2e.harness import STAFF_PASSWORD, STAFF_USERNAME

NewPage = Callable[..., Page]
TAKES_BACKORDERS = "Take backorders (orders wait for stock instead of being rejected)"


def shipped_order(console: Console, name: str, price: str, stock: int, units: int) -> tuple:
    """A new customer's order for ``units`` of a new product, shipped: (buyer, credentials,
    product, order)."""
    product = console.staff.create_product(name=name, price=price, stock=stock)
    username, password = console.customer()
    buyer = console.staff.as_user(username, password)
    placed = buyer.place_order([{"product_id": product["id"], "quantity": units}]).json()
    buyer.wait_for_status(placed["id"], {"CONFIRMED"})
    response = console.staff.post(f"{console.url}/api/orders/{placed['id']}/ship/")
    assert response.status_code == 200, response.text
    buyer.wait_for_status(placed["id"], {"SHIPPED"})
    return buyer, (username, password), product, placed


def returns_of(api: Api, console: Console, order_id: str) -> list[dict]:
    response = api.get(f"{console.url}/api/orders/{order_id}/returns/")
    assert response.status_code == 200, response.text
    body = response.json()
    return list(body["results"] if isinstance(body, dict) else body)


class TestReturns:
    def test_a_customer_returns_part_of_a_shipped_order(
        self, console: Console, new_page: NewPage
    ) -> None:
        buyer, (username, password), product, order = shipped_order(
            console, "Glass jug", "20.00", stock=5, units=3
        )
        page = new_page()
        sign_in(page, username, password)
        page.goto(f"/#/orders/{order['id']}")
        expect(page.locator(".order-status")).to_have_attribute("data-status", "SHIPPED")
        returns = page.get_by_role("region", name="Returns", exact=True)
        expect(returns).to_contain_text("Nothing returned yet.")

        returns.get_by_role("button", name="Return items").click()
        form = page.get_by_role("form", name="Return items")
        units = form.get_by_label("Units of Glass jug to return (up to 3)")
        expect(units).to_have_attribute("max", "3")
        form.get_by_label("Why they come back").fill("two arrived cracked")
        form.get_by_role("button", name="Request return").click()  # no unit chosen: said
        expect(returns.get_by_role("alert").first).to_contain_text("Choose at least one unit")
        units.fill("2")
        screenshot(page, "order-return-request")
        units.press("Enter")  # sent from the keyboard (a click right after a screenshot is lost)

        expect(returns).to_contain_text("requested: 2 \u00d7 Glass jug")
        row = returns.locator("tr[data-return-id]")
        expect(row).to_have_count(1)
        expect(row).to_have_attribute("data-status", "REQUESTED")
        expect(row).to_contain_text("two arrived cracked")
        [requested] = returns_of(buyer, console, order["id"])
        assert requested["status"] == "REQUESTED"
        assert [(line["product_id"], line["quantity"]) for line in requested["lines"]] == [
            (product["id"], 2)
        ]
        assert requested["reason"] == "two arrived cracked"

        # One unit is left to return: the form offers only it.
        returns.get_by_role("button", name="Return items").click()
        expect(form.get_by_label("Units of Glass jug to return (up to 1)")).to_have_attribute(
            "max", "1"
        )

    def test_staff_receive_a_return_restocked_and_damaged_and_see_the_refund(
        self, console: Console, new_page: NewPage
    ) -> None:
        buyer, (username, password), product, order = shipped_order(
            console, "Ceramic bowl", "12.50", stock=5, units=3
        )
        lines = [{"product_id": product["id"], "quantity": 3}]
        asked = buyer.post(
            f"{console.url}/api/orders/{order['id']}/returns/",
            {"lines": lines, "reason": "wrong colour"},
        )
        assert asked.status_code == 201, asked.text
        return_id = asked.json()["id"]
        console.staff.wait_for_product(product["id"], on_hand=2, reserved=0)

        page = new_page()
        sign_in(page, STAFF_USERNAME, STAFF_PASSWORD)
        nav_link(page, "Returns")
        expect(page.get_by_role("heading", name="Returns", exact=True)).to_be_visible()
        row = page.locator(f'tr[data-return-id="{return_id}"]')
        expect(row).to_have_attribute("data-status", "REQUESTED")
        expect(row).to_contain_text("3 \u00d7 Ceramic bowl")
        expect(row).to_contain_text("wrong colour")
        screenshot(page, "staff-returns")

        row.get_by_role("link", name="Receive").click()
        form = page.get_by_role("form", name="Receive the return")
        form.get_by_label("Into warehouse").select_option("default")
        form.get_by_label("Units of Ceramic bowl restocked").fill("3")
        form.get_by_label("Units of Ceramic bowl damaged").fill("1")  # 4 of 3: refused here
        form.get_by_role("button", name="Receive return").click()
        expect(page.get_by_role("alert").first).to_contain_text("at most 3 unit(s) came back")
        form.get_by_label("Units of Ceramic bowl restocked").fill("2")
        screenshot(page, "staff-return-receive")
        form.get_by_label("Units of Ceramic bowl restocked").press("Enter")

        expect(page.locator("#messages")).to_contain_text("received: 37.50 refunded")
        summary = page.locator(".return-summary")
        expect(summary).to_have_attribute("data-status", "RECEIVED")
        expect(summary.locator('[data-role="refund"]')).to_have_text("37.50")
        received = page.get_by_role("region", name="Returned units")
        line = received.locator(f'tr[data-product-id="{product["id"]}"]')
        expect(line.locator('[data-units="restocked"]')).to_have_text("2")
        expect(line.locator('[data-units="damaged"]')).to_have_text("1")
        expect(page.get_by_role("form", name="Receive the return")).to_have_count(0)
        screenshot(page, "staff-return-received")

        done = console.staff.get(f"{console.url}/api/returns/{return_id}/").json()
        assert (done["status"], done["refund_amount"], done["warehouse"]) == (
            "RECEIVED",
            "37.50",
            "default",
        )
        console.staff.wait_for_product(product["id"], on_hand=4, reserved=0)  # 2 back on hand
        nav_link(page, "Returns")
        expect(page.locator(f'tr[data-return-id="{return_id}"]')).to_have_count(0)

        customer = new_page()
        sign_in(customer, username, password)
        customer.goto(f"/#/orders/{order['id']}")
        lines_table = customer.get_by_role("region", name="Order lines")
        mine = lines_table.locator(f'tr[data-product-id="{product["id"]}"]')
        expect(mine.locator('[data-units="returned"]')).to_have_text("3")
        expect(customer.locator('[data-role="refunded-total"]')).to_have_text("37.50")
        returns = customer.get_by_role("region", name="Returns", exact=True)
        expect(returns.locator(f'tr[data-return-id="{return_id}"]')).to_have_attribute(
            "data-status", "RECEIVED"
        )
        expect(returns.locator('[data-role="refund"]')).to_have_text("37.50")
        expect(returns.get_by_role("button", name="Return items")).to_have_count(0)
        screenshot(customer, "order-returns")


class TestBackorders:
    def test_backordered_orders_show_their_place_and_the_products_waiting_list(
        self, console: Console, new_page: NewPage
    ) -> None:
        sku = f"PRE-{uuid.uuid4().hex[:6]}"
        product = console.staff.create_product(
            sku=sku, name="Pour-over kettle", price="30.00", stock=1, allow_backorder=True
        )
        first_name, first_password = console.customer()
        first = console.staff.as_user(first_name, first_password)
        early = first.place_order([{"product_id": product["id"], "quantity": 2}]).json()
        first.wait_for_status(early["id"], {"BACKORDERED"})  # holds 1, waits for 1
        username, password = console.customer()
        buyer = console.staff.as_user(username, password)
        late = buyer.place_order([{"product_id": product["id"], "quantity": 2}]).json()
        buyer.wait_for_status(late["id"], {"BACKORDERED"})  # holds none, waits for 2

        page = new_page()
        sign_in(page, username, password)
        page.goto(f"/#/orders/{late['id']}")
        status = page.locator(".order-status")
        expect(status).to_have_attribute("data-status", "BACKORDERED")
        expect(status).to_contain_text("Backordered")
        waiting = page.get_by_role("region", name="Waiting for stock")
        line = waiting.locator(f'tr[data-product-id="{product["id"]}"]')
        expect(line.locator('[data-units="missing"]')).to_have_text("2")
        expect(line.locator('[data-role="place"]')).to_have_text("2")
        screenshot(page, "order-backordered")

        orders = new_page()
        sign_in(orders, username, password)
        orders.goto("/#/orders?status=BACKORDERED")
        expect(orders.locator(f'tr[data-order-id="{late["id"]}"] .badge')).to_have_text(
            "BACKORDERED"
        )
        orders.goto("/#/shop")  # none available, and still for sale: it waits for stock
        card = orders.locator(f'li.product[data-sku="{sku}"]')
        expect(card.locator(".stock")).to_have_text(
            "Out of stock: order now, it ships when stock arrives"
        )
        expect(card.get_by_role("button", name="Add to cart")).to_be_enabled()

        staff = new_page()
        sign_in(staff, STAFF_USERNAME, STAFF_PASSWORD)
        staff.goto(f"/#/staff/products/{product['id']}")
        expect(staff.locator('dd[data-level="backordered"]')).to_have_text("3")
        listed = staff.get_by_role("region", name="Waiting list")
        expect(listed.locator("tbody tr")).to_have_count(2)
        early_row = listed.locator(f'tr[data-order-id="{early["id"]}"]')
        late_row = listed.locator(f'tr[data-order-id="{late["id"]}"]')
        expect(early_row.locator('[data-role="place"]')).to_have_text("1")
        expect(early_row.locator('[data-units="missing"]')).to_have_text("1")
        expect(late_row.locator('[data-role="place"]')).to_have_text("2")
        expect(late_row.locator('[data-units="missing"]')).to_have_text("2")
        expect(staff.get_by_label(TAKES_BACKORDERS)).to_be_checked()
        screenshot(staff, "staff-product-backorders")

        adjust = staff.get_by_role("form", name="Adjust stock")
        adjust.get_by_label("Change in units on hand").fill("3")  # enough for both, in turn
        adjust.get_by_label("Reason").fill("the delivery they wait for")
        adjust.get_by_role("button", name="Record adjustment").click()
        expect(status).to_have_attribute("data-status", "CONFIRMED")  # by itself
        expect(page.get_by_role("region", name="Waiting for stock")).to_have_count(0)
        assert first.wait_for_status(early["id"], {"CONFIRMED"})["status"] == "CONFIRMED"
        staff.reload()
        expect(staff.get_by_role("region", name="Waiting list")).to_contain_text(
            "No order is waiting for this product."
        )
        expect(staff.locator('dd[data-level="backordered"]')).to_have_text("0")

        staff.get_by_label(TAKES_BACKORDERS).uncheck()
        staff.get_by_role("button", name="Save changes").click()
        expect(staff.locator("#messages")).to_contain_text("Saved Pour-over kettle")
        assert console.staff.product(product["id"])["allow_backorder"] is False
