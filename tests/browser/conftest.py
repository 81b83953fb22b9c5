"""The web console in a real browser (Chromium through Playwright) against the running system.

The system is the end-to-end one (``tests.e2e.harness.running_system``), the gateway included:
the browser only ever talks to the gateway's address, as a user would.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from devstack.system import LocalSystem
from service_runtime.settings import REPO_ROOT
from tests.e2e.client import Api
from tests.e2e.harness import STAFF_PASSWORD, STAFF_USERNAME, running_system

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENS = REPO_ROOT / "reports" / "screens"
DESKTOP = ViewportSize(width=1280, height=860)
PHONE = ViewportSize(width=390, height=844)

expect.set_options(timeout=15_000)


@dataclass
class Console:
    url: str
    prefix: str
    staff: Api
    system: LocalSystem

    def customer(self) -> tuple[str, str]:
        """A new customer account, registered over the API: (username, password)."""
        username = f"shopper-{uuid.uuid4().hex[:8]}"
        password = f"pw-{uuid.uuid4().hex}"
        response = requests.post(
            f"{self.url}/api/users/register/",
            json={"username": username, "email": f"{username}@example.test", "password": password},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return username, password


@pytest.fixture(scope="package")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (CI installs it: apt-get install chromium)")
    work_dir = tmp_path_factory.mktemp("console-system")
    with running_system(work_dir) as (system, _, prefix):
        url = system.url("gateway")
        staff = Api(url, url, url).as_user(STAFF_USERNAME, STAFF_PASSWORD)
        try:
            yield Console(url, prefix, staff, system)
        finally:
            print(f"\nprocess logs: {work_dir / 'logs'}")


@pytest.fixture(scope="package")
def browser(console: Console) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def new_page(browser: Browser, console: Console) -> Iterator[Callable[..., Page]]:
    """Pages in browser contexts of their own (separate sessions), closed after the test."""
    contexts = []

    def make(viewport: ViewportSize | None = None) -> Page:
        context = browser.new_context(base_url=console.url, viewport=viewport or DESKTOP)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: print(f"page error: {error}"))
        return page

    yield make
    for context in contexts:
        context.close()


def screenshot(page: Page, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENS / f"{name}.png"), full_page=True)


def sign_in(page: Page, username: str, password: str) -> None:
    page.goto("/#/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def nav_link(page: Page, name: str) -> None:
    navigation = page.get_by_role("navigation", name="Main")
    navigation.get_by_role("link", name=re.compile(f"^{name}")).click()
