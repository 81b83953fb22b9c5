"""Warehouses in the web console, in Chromium, on the running system: creating and editing
them, a product's stock in each with transfers between them, and an order held in two
warehouses shipped in parts from its page."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import Console, nav_link, screenshot, sign_in
from tests.e2e.harness import STAFF_PASSWORD, STAFF_USERNAME

NewPage = Callable[..., Page]

# Below the default warehouse's priority (0), so that the other tests' orders keep taking
# their stock from the default warehouse.
LOW_PRIORITY = -10


def new_code(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def create_warehouse(console: Console, code: str, name: str) -> dict:
    response = console.staff.post(
        f"{console.url}/api/warehouses/", {"code": code, "name": name, "priority": LOW_PRIORITY}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def stock_into(console: Console, product_id: int, warehouse: str, delta: int) -> None:
    response = console.staff.post(
        f"{console.url}/api/products/{product_id}/stock-adjustments/",
        {"delta": delta, "reason": "delivery", "warehouse": warehouse},
    )
    assert response.status_code == 201, response.text


def level(page: Page, warehouse: str, name: str) -> Locator:
    return page.locator(f'tr[data-warehouse="{warehouse}"] td[data-level="{name}"]')


def staff_page(new_page: NewPage) -> Page:
    page = new_page()
    sign_in(page, STAFF_USERNAME, STAFF_PASSWORD)
    return page


class TestWarehouses:
    def test_staff_creates_a_warehouse_edits_it_and_sees_refusals_beside_the_field(
        self, console: Console, new_page: NewPage
    ) -> None:
        code = new_code("east")
        page = staff_page(new_page)
        nav_link(page, "Warehouses")
        expect(page.get_by_role("heading", name="Warehouses", exact=True)).to_be_visible()
        expect(page.locator('tr[data-code="default"]')).to_be_visible()

        form = page.get_by_role("form", name="New warehouse")
        form.get_by_label("Code").fill(code)
        form.get_by_label("Warehouse name").fill("East depot")
        form.get_by_label("Priority").fill(str(LOW_PRIORITY))
        form.get_by_role("button", name="Create warehouse").click()
        expect(page.locator("#messages")).to_contain_text(f"Created warehouse {code} (East depot)")
        row = page.locator(f'tr[data-code="{code}"]')
        expect(row).to_contain_text("ACTIVE")
        expect(row.get_by_label(f"Priority of {code}")).to_have_value(str(LOW_PRIORITY))

        form = page.get_by_role("form", name="New warehouse")
        form.get_by_label("Code").fill(code)  # taken: said beside the code
        form.get_by_label("Warehouse name").fill("Another")
        form.get_by_role("button", name="Create warehouse").click()
        code_input = form.get_by_label("Code")
        expect(code_input).to_have_attribute("aria-invalid", "true")
        expect(form.locator(".field[data-field='code'] .field-error")).to_contain_text(
            "already exists"
        )
        form.get_by_label("Code").fill("not a code!")
        form.get_by_role("button", name="Create warehouse").click()
        expect(form.locator(".field[data-field='code'] .field-error")).to_contain_text(
            "letters, numbers, underscores or hyphens"
        )

        row.get_by_label(f"Name of {code}").fill("")  # a name is required: said in the row
        row.get_by_role("button", name=f"Save {code}").click()
        expect(row.locator(".field-error").first).not_to_be_empty()
        expect(row.get_by_label(f"Name of {code}")).to_have_attribute("aria-invalid", "true")

        row.get_by_label(f"Name of {code}").fill("East depot (main hall)")
        row.get_by_label(f"Priority of {code}").fill(str(LOW_PRIORITY + 1))
        row.get_by_role("button", name=f"Save {code}").click()
        expect(page.locator("#messages")).to_contain_text(f"Saved {code}: East depot (main hall)")
        expect(row.get_by_label(f"Priority of {code}")).to_have_value(str(LOW_PRIORITY + 1))

        row.get_by_role("button", name=f"Deactivate {code}").click()
        expect(row).to_contain_text("INACTIVE")
        expect(row).to_have_class("inactive")
        screenshot(page, "warehouses")
        saved = console.staff.get(f"{console.url}/api/warehouses/").json()["results"]
        [mine] = [w for w in saved if w["code"] == code]
        assert (mine["name"], mine["priority"], mine["active"]) == (
            "East depot (main hall)",
            LOW_PRIORITY + 1,
            False,
        )
        row.get_by_role("button", name=f"Activate {code}").click()
        expect(row).not_to_have_class("inactive")
        expect(row.get_by_role("button", name=f"Deactivate {code}")).to_be_visible()

    def test_staff_moves_stock_between_warehouses_on_the_product_page(
        self, console: Console, new_page: NewPage
    ) -> None:
        code = new_code("north")
        create_warehouse(console, code, "North depot")
        product = console.staff.create_product(name="Kettle", price="40.00", stock=5)
        page = staff_page(new_page)
        page.goto(f"/#/staff/products/{product['id']}")
        expect(level(page, "default", "available")).to_have_text("5")
        expect(level(page, code, "on_hand")).to_have_text("0")

        form = page.get_by_role("form", name="Move stock between warehouses")
        form.get_by_label("From warehouse").select_option("default")
        form.get_by_label("To warehouse").select_option(code)
        form.get_by_label("Units to move").fill("7")
        form.get_by_label("Why they move").fill("stocking the new depot")
        form.get_by_role("button", name="Move stock").click()
        refusal = form.locator(".field[data-field='quantity'] .field-error")
        expect(refusal).to_contain_text("only 5 available in warehouse 'default'")
        expect(form.get_by_role("alert").first).to_be_visible()
        expect(level(page, code, "on_hand")).to_have_text("0")

        form.get_by_label("Units to move").fill("3")
        form.get_by_role("button", name="Move stock").click()
        expect(page.locator("#messages")).to_contain_text("Moved 3 from default")
        expect(level(page, "default", "available")).to_have_text("2")
        expect(level(page, code, "on_hand")).to_have_text("3")
        expect(page.locator('dd[data-level="available"]')).to_have_text("5")

        adjust = page.get_by_role("form", name="Adjust stock")
        adjust.get_by_label("Change in units on hand").fill("4")
        adjust.get_by_label("Reason").fill("delivery to the north depot")
        adjust.get_by_label("In warehouse").select_option(code)
        adjust.get_by_role("button", name="Record adjustment").click()
        expect(level(page, code, "available")).to_have_text("7")
        expect(level(page, "default", "available")).to_have_text("2")
        expect(page.locator('dd[data-level="on_hand"]')).to_have_text("9")
        ledger = page.get_by_role("region", name="Stock ledger")
        expect(ledger).to_contain_text("stocking the new depot")
        expect(ledger).to_contain_text("delivery to the north depot")
        screenshot(page, "staff-product-warehouses")
        levels = {w["warehouse"]: w for w in console.staff.product(product["id"])["warehouses"]}
        assert (levels["default"]["on_hand"], levels[code]["on_hand"]) == (2, 7)


class TestShipments:
    def test_an_order_held_in_two_warehouses_ships_in_parts_from_its_page(
        self, console: Console, new_page: NewPage
    ) -> None:
        """An ordinary order of 5, placed through the API: inventory holds the 3 units of the
        default warehouse and, for the rest, the 2 of a warehouse of lower priority."""
        code = new_code("west")
        create_warehouse(console, code, "West depot")
        product = console.staff.create_product(name="Teacup", price="6.00", stock=3)
        stock_into(console, product["id"], code, 2)
        username, password = console.customer()
        buyer = console.staff.as_user(username, password)
        placed = buyer.place_order([{"product_id": product["id"], "quantity": 5}]).json()
        confirmed = buyer.wait_for_status(placed["id"], {"CONFIRMED"})
        held = {"default": 3, code: 2}
        assert {a["warehouse"]: a["quantity"] for a in confirmed["allocations"]} == held

        page = staff_page(new_page)
        page.goto(f"/#/orders/{placed['id']}?from=staff")
        status = page.locator(".order-status")
        expect(status).to_have_attribute("data-status", "CONFIRMED")
        allocation = page.get_by_role("region", name="Allocation", exact=True)
        expect(allocation.locator(f'tr[data-warehouse="{code}"] [data-units="left"]')).to_have_text(
            "2"
        )
        expect(allocation.locator('tr[data-warehouse="default"] [data-units="left"]')).to_have_text(
            "3"
        )

        page.get_by_role("button", name=f"Ship from {code}").click()  # all it holds
        expect(status).to_have_attribute("data-status", "PARTIALLY_SHIPPED")
        shipments = page.get_by_role("region", name="Shipments", exact=True)
        expect(shipments.locator("tbody tr")).to_have_count(1)
        expect(shipments.locator(f'tr[data-warehouse="{code}"]')).to_contain_text("2 \u00d7 Teacup")
        lines = page.get_by_role("region", name="Order lines")
        line = lines.locator(f'tr[data-product-id="{product["id"]}"]')
        expect(line.locator('[data-units="shipped"]')).to_have_text("2")
        expect(line.locator('[data-units="ordered"]')).to_have_text("5")
        expect(page.get_by_role("button", name=f"Ship from {code}")).to_have_count(0)

        default = page.get_by_role("form", name="Ship from default")
        default.get_by_label("Units of Teacup from default").fill("1")  # chosen quantities
        default.get_by_role("button", name="Ship from default").click()
        expect(shipments.locator("tbody tr")).to_have_count(2)
        expect(line.locator('[data-units="shipped"]')).to_have_text("3")
        expect(status).to_have_attribute("data-status", "PARTIALLY_SHIPPED")
        expect(page.get_by_label("Units of Teacup from default")).to_have_value("2")
        screenshot(page, "staff-order-shipments")

        customer = new_page()
        sign_in(customer, username, password)
        nav_link(customer, "Orders")
        mine = customer.locator(f'tr[data-order-id="{placed["id"]}"]')
        expect(mine).to_have_attribute("data-status", "PARTIALLY_SHIPPED")
        expect(mine).to_contain_text("PARTIALLY_SHIPPED")

        listed = new_page()
        sign_in(listed, STAFF_USERNAME, STAFF_PASSWORD)
        listed.goto(f"/#/staff/orders?status=PARTIALLY_SHIPPED&user_id={placed['user_id']}")
        row = listed.locator(f'tr[data-order-id="{placed["id"]}"]')
        expect(row.locator(".badge")).to_have_text("PARTIALLY_SHIPPED")
        expect(listed.locator("tr[data-order-id]")).to_have_count(1)

        page.get_by_role("button", name="Ship the rest").click()
        expect(status).to_have_attribute("data-status", "SHIPPED")
        expect(shipments.locator("tbody tr")).to_have_count(3)
        expect(line.locator('[data-units="shipped"]')).to_have_text("5")
        expect(page.get_by_role("button", name="Ship the rest")).to_have_count(0)
        shipped = buyer.order(placed["id"])
        assert shipped["status"] == "SHIPPED"
        assert sorted(
            (s["warehouse"], sum(x["quantity"] for x in s["lines"])) for s in shipped["shipments"]
        ) == sorted([(code, 2), ("default", 1), ("default", 2)])
