"""What a customer and an operator do in the web console, in Chromium, on the running system."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

import pika
import requests
from playwright.sync_api import Locator, Page, expect

from messaging.envelope import Envelope
from messaging.topology import Names
from tests.browser.conftest import PHONE, Console, nav_link, screenshot, sign_in
from tests.e2e.harness import BROKER_URL, STAFF_PASSWORD, STAFF_USERNAME

NewPage = Callable[..., Page]


def product_card(page: Page, sku: str) -> Locator:
    return page.locator(f'li.product[data-sku="{sku}"]')


def add_to_cart(page: Page, sku: str, name: str, quantity: int) -> None:
    card = product_card(page, sku)
    card.get_by_label(f"Quantity of {name}").fill(str(quantity))
    card.get_by_role("button", name="Add to cart").click()
    expect(page.locator(".announcer")).to_contain_text(f"Added {quantity} \u00d7 {name}")


class TestCustomer:
    def test_a_customer_registers_orders_and_sees_it_confirmed(
        self, console: Console, new_page: NewPage
    ) -> None:
        sku = f"MUG-{uuid.uuid4().hex[:6]}"
        product = console.staff.create_product(sku=sku, name="Blue mug", price="12.50", stock=5)
        page = new_page()
        page.goto("/")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        screenshot(page, "login")
        page.get_by_role("link", name="Create an account").click()
        username = f"alice-{uuid.uuid4().hex[:6]}"
        page.get_by_label("Username").fill(username)
        page.get_by_label("E-mail").fill(f"{username}@example.test")
        page.get_by_label("Password").fill("wonderland-42-long")
        page.get_by_role("button", name="Create account").click()

        expect(page.get_by_role("heading", name="Catalogue")).to_be_visible()
        expect(product_card(page, sku).locator(".stock")).to_have_text("5 in stock")
        add_to_cart(page, sku, "Blue mug", 2)
        screenshot(page, "catalogue")

        nav_link(page, "Cart")
        expect(page.get_by_role("heading", name="Your cart")).to_be_visible()
        expect(page.locator(".total")).to_contain_text("25.00")
        screenshot(page, "cart")
        page.get_by_role("button", name="Place order").dblclick()  # a double click orders once

        status = page.locator(".order-status")
        expect(status).to_have_attribute("data-status", "CONFIRMED")
        expect(status).to_contain_text("The stock is reserved for this order.")
        expect(page.locator(".timeline")).to_contain_text("PENDING → CONFIRMED")
        screenshot(page, "order-confirmed")

        nav_link(page, "Orders")
        expect(page.locator("tr[data-order-id]")).to_have_count(1)
        expect(page.locator("tr[data-order-id]")).to_contain_text("CONFIRMED")
        screenshot(page, "order-history")
        console.staff.wait_for_product(product["id"], on_hand=5, reserved=2)

        nav_link(page, "Notifications")
        expect(page.locator(".notification.unread").first).to_be_visible()
        expect(page.locator("#unread-count")).to_be_visible()
        screenshot(page, "notifications")
        page.get_by_role("button", name="Mark all as read").click()
        expect(page.locator(".unread-summary")).to_contain_text("0 unread notifications")
        expect(page.locator("#unread-count")).to_be_hidden()

    def test_an_order_beyond_the_stock_shows_rejected_with_the_reason(
        self, console: Console, new_page: NewPage
    ) -> None:
        sku = f"LAMP-{uuid.uuid4().hex[:6]}"
        console.staff.create_product(sku=sku, name="Desk lamp", price="30.00", stock=1)
        page = new_page()
        sign_in(page, *console.customer())
        expect(product_card(page, sku).locator(".stock")).to_have_text("1 in stock")
        add_to_cart(page, sku, "Desk lamp", 3)
        nav_link(page, "Cart")
        expect(page.locator("tbody")).to_contain_text("Only 1 available now")
        page.get_by_role("button", name="Place order").click()

        status = page.locator(".order-status")
        expect(status).to_have_attribute("data-status", "REJECTED")
        expect(status).to_contain_text("Desk lamp: out of stock (you asked for 3, 1 available).")
        screenshot(page, "order-rejected")


class TestStaff:
    def test_staff_adds_stock_and_the_customers_catalogue_shows_it(
        self, console: Console, new_page: NewPage
    ) -> None:
        sku = f"TEA-{uuid.uuid4().hex[:6]}"
        staff = new_page()
        sign_in(staff, STAFF_USERNAME, STAFF_PASSWORD)
        expect(staff.get_by_role("heading", name="Products and stock")).to_be_visible()
        staff.get_by_role("link", name="New product").click()
        staff.get_by_label("SKU").fill(sku)
        staff.get_by_label("Name").fill("Green tea")
        staff.get_by_label("Price").fill("4.20")
        staff.get_by_label("Low-stock threshold").fill("10")
        staff.get_by_role("button", name="Create product").click()
        expect(staff.get_by_role("heading", name=re.compile("^Green tea"))).to_be_visible()

        customer = new_page(viewport=PHONE)
        sign_in(customer, *console.customer())
        stock = product_card(customer, sku).locator(".stock")
        expect(stock).to_have_text("Out of stock")

        adjust = staff.get_by_role("form", name="Adjust stock")
        adjust.get_by_label("Change in units on hand").fill("6")
        adjust.get_by_label("Reason").fill("delivery from the supplier")
        adjust.get_by_role("button", name="Record adjustment").click()
        expect(staff.locator('dd[data-level="available"]')).to_have_text("6")
        ledger = staff.get_by_role("region", name="Stock ledger")
        expect(ledger).to_contain_text("delivery from the supplier")
        screenshot(staff, "staff-product")

        expect(stock).to_have_text("Only 6 left")  # the open catalogue updates by itself
        product_card(customer, sku).scroll_into_view_if_needed()
        screenshot(customer, "catalogue-phone")

        staff.get_by_role("link", name="← Products").click()
        row = staff.locator(f'tr[data-sku="{sku}"]')
        expect(row).to_have_class("low")
        expect(row).to_contain_text("Low stock")
        screenshot(staff, "staff-products")

    def test_staff_filters_orders_and_ships_one(self, console: Console, new_page: NewPage) -> None:
        product = console.staff.create_product(name="Teapot", price="25.00", stock=3)
        username, password = console.customer()
        buyer = console.staff.as_user(username, password)
        placed = buyer.place_order([{"product_id": product["id"], "quantity": 1}]).json()
        buyer.wait_for_status(placed["id"], {"CONFIRMED"})
        user_id = placed["user_id"]

        page = new_page()
        sign_in(page, STAFF_USERNAME, STAFF_PASSWORD)
        nav_link(page, "All orders")
        page.get_by_label("Status").select_option("CONFIRMED")
        page.get_by_label("Customer id").fill(str(user_id))
        page.get_by_role("button", name="Filter").click()
        row = page.locator(f'tr[data-order-id="{placed["id"]}"]')
        expect(page.locator("tr[data-order-id]")).to_have_count(1)
        screenshot(page, "staff-orders")
        row.get_by_role("button", name="Ship").click()
        expect(page.locator("main .notice")).to_contain_text("No orders match these filters.")
        assert buyer.order(placed["id"])["status"] == "SHIPPED"

    def test_staff_inspects_and_replays_a_dead_lettered_message(
        self, console: Console, new_page: NewPage
    ) -> None:
        names = Names(console.prefix)
        recoverable = Envelope.new(
            "order.cancelled",
            {"order_id": str(uuid.uuid4()), "user_id": 1, "reason": "cancelled by the customer"},
            source="orders",
            correlation_id=str(uuid.uuid4()),
        )
        dead_letter(names, recoverable.to_json().encode(), recoverable.id, "failed 3 times: db")
        dead_letter(names, b"{not json at all", None, "malformed: body is not JSON")

        page = new_page()
        sign_in(page, STAFF_USERNAME, STAFF_PASSWORD)
        nav_link(page, "Dead letters")
        section = page.locator('section[data-service="inventory"]')
        count = section.locator(".count")
        expect(count).to_have_text("2 messages")
        expect(page.locator('section[data-service="orders"] .count')).to_have_text("0 messages")
        letter = section.locator(f'li[data-id="{recoverable.id}"]')
        letter.get_by_text("Inspect").click()
        expect(letter.locator("pre.body")).to_contain_text(recoverable.id)
        screenshot(page, "dead-letters")

        letter.get_by_role("button", name="Replay").click()
        expect(count).to_have_text("1 message")
        expect(section).to_have_attribute("aria-busy", "false")
        expect(section.get_by_role("status")).to_contain_text("Replayed message")
        section.get_by_role("button", name="Refresh").click()  # it stayed out: it was processed
        expect(section).to_have_attribute("aria-busy", "false")
        expect(count).to_have_text("1 message")

        poison = section.locator("li.dead-letter")
        expect(poison).to_contain_text("malformed: body is not JSON")
        poison.get_by_role("button", name="Purge").click()
        poison.get_by_role("button", name="Confirm purge").click()
        expect(count).to_have_text("0 messages")


class TestErrors:
    def test_an_expired_token_is_renewed_and_an_expired_session_asks_to_sign_in_again(
        self, console: Console, new_page: NewPage
    ) -> None:
        username, password = console.customer()
        page = new_page()
        sign_in(page, username, password)
        expire = """(tokens) => {
            const stored = JSON.parse(localStorage.getItem("console.session"));
            for (const name of tokens) stored[name] = `expired.${name}.token`;
            localStorage.setItem("console.session", JSON.stringify(stored));
        }"""
        page.evaluate(expire, ["access"])  # the refresh token gets a new one, unnoticed
        nav_link(page, "Orders")
        expect(page.get_by_role("heading", name="Your orders")).to_be_visible()
        assert page.evaluate("JSON.parse(localStorage.getItem('console.session')).access") != (
            "expired.access.token"
        )

        page.evaluate(expire, ["access", "refresh"])  # both expired while the tab stayed open
        nav_link(page, "Notifications")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(page.locator("#messages")).to_contain_text(
            "Your session has expired. Please sign in again."
        )
        sign_in(page, username, password)
        expect(page.get_by_role("heading", name="Notifications")).to_be_visible()

    def test_a_service_that_is_down_is_named_in_plain_words(
        self, console: Console, new_page: NewPage
    ) -> None:
        page = new_page()
        sign_in(page, *console.customer())
        expect(page.get_by_role("heading", name="Catalogue")).to_be_visible()
        inventory = console.system.find("inventory", "web")
        inventory.stop()
        try:
            page.reload()
            expect(page.get_by_role("alert")).to_contain_text(
                "The inventory service is unavailable right now. Try again in a moment."
            )
            screenshot(page, "service-unavailable")
        finally:
            inventory.start()
        wait_for_catalogue(console)
        page.get_by_role("button", name="Try again").click()
        expect(page.get_by_role("heading", name="Catalogue")).to_be_visible()


def wait_for_catalogue(console: Console, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{console.url}/api/products/", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, "the inventory service did not come back"
        time.sleep(0.2)


def dead_letter(names: Names, body: bytes, message_id: str | None, reason: str) -> None:
    """Put a message straight into the inventory service's dead-letter queue."""
    connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_publish(
        "",
        names.dead_letter_queue("inventory"),
        body,
        pika.BasicProperties(
            message_id=message_id,
            delivery_mode=pika.DeliveryMode.Persistent,
            headers={
                "x-death-reason": reason,
                "x-attempt": 3,
                "x-original-routing-key": "order.cancelled",
                "x-dead-lettered-at": "2026-11-25T10:00:00+00:00",
            },
        ),
        mandatory=True,
    )
    connection.close()
