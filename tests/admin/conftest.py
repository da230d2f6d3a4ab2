"""Browser tests: a real `keyturn serve` and Debian's Chromium driven by Playwright.

They run whenever a Chromium is installed, and are required (never skipped) when CI=true;
`make test` installs Debian's `chromium` package when it is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Dialog,
    Page,
    Request,
    Route,
    sync_playwright,
)

from tests.admin.server import KeyturnServer
from tests.conftest import require_service

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    configured = os.environ.get("KEYTURN_TEST_CHROMIUM")
    if configured:
        return configured
    return shutil.which("chromium") or shutil.which("chromium-browser")


def require_chromium() -> str:
    path = chromium_path()
    require_service("Chromium (apt-get install chromium)", path is not None)
    assert path is not None
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyturnServer]:
    """One server for every browser test: each test works with users of its own."""
    require_chromium()
    server = KeyturnServer(tmp_path_factory.mktemp("keyturn-serve"))
    server.start()
    yield server
    server.stop()


@dataclass
class Watch:
    """What a page did besides its job: requests elsewhere, errors, JavaScript dialogs."""

    origin: str
    blocked: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def route(self, route: Route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob") or f"{parts.scheme}://{parts.netloc}" == self.origin:
            route.fallback()
            return
        # Any other host is "the internet", which a machine running Keyturn may not have.
        self.blocked.append(url)
        route.abort("blockedbyclient")

    def request(self, request: Request) -> None:
        self.requests.append(request.url)

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def page_error(self, error: Exception) -> None:
        self.errors.append(str(error))

    def dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()


@pytest.fixture
def watch(server: KeyturnServer) -> Watch:
    return Watch(origin=server.url)


@pytest.fixture
def page(browser: Browser, server: KeyturnServer, watch: Watch) -> Iterator[Page]:
    """A fresh browser profile (no cookies) whose every request to another host is refused."""
    context = browser.new_context(base_url=server.url, locale="en-US", timezone_id="UTC")
    context.set_default_timeout(10_000)
    context.route("**/*", watch.route)
    page = context.new_page()
    page.on("request", watch.request)
    page.on("console", watch.console)
    page.on("pageerror", watch.page_error)
    page.on("dialog", watch.dialog)
    yield page
    context.close()
    assert watch.blocked == [], f"requests to other hosts: {watch.blocked}"
    assert watch.errors == [], f"errors in the page: {watch.errors}"
    assert watch.dialogs == [], f"JavaScript dialogs opened: {watch.dialogs}"
