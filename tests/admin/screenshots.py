"""Writes the console's screenshots for the README into docs/: run it after changing the UI.

    .venv/bin/python -m tests.admin.screenshots

It starts its own server on a temporary database, with a few users and sessions to show.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from tests.admin.conftest import CHROMIUM_ARGS, chromium_path
from tests.admin.pages import (
    CHROME_ON_WINDOWS,
    FIREFOX_ON_LINUX,
    SAFARI_ON_IOS,
    confirm,
    open_user,
    session_row,
    sign_in,
)
from tests.admin.server import ADMIN_EMAIL, KeyturnServer

DOCS = Path(__file__).resolve().parents[2] / "docs"
ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36"
)
FEATURED = "ana.garcia@example.com"


def seed(server: KeyturnServer) -> None:
    token = server.admin_token()
    for email in ("ben.okafor@example.com", "chen.wei@example.com", "dana.smith@example.com"):
        server.create_user(email, token=token)
    server.create_user("eli.novak@example.com", role="ADMIN", token=token)
    server.create_user(FEATURED, token=token)
    server.login(FEATURED, user_agent=FIREFOX_ON_LINUX, address="203.0.113.24")
    server.login(FEATURED, user_agent=SAFARI_ON_IOS, address="198.51.100.7")
    server.login(FEATURED, user_agent=CHROME_ON_WINDOWS, address="192.0.2.40")
    server.login("ben.okafor@example.com", user_agent=ANDROID, address="198.51.100.23")
    server.login("chen.wei@example.com", user_agent="okhttp/4.12.0", address="192.0.2.77")
    server.login(ADMIN_EMAIL, user_agent=FIREFOX_ON_LINUX, address="192.0.2.10")


def shoot(page: Page, name: str, *, full_page: bool = True) -> None:
    path = DOCS / name
    page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    print(f"wrote {path.relative_to(DOCS.parent)}")


def main() -> None:
    path = chromium_path()
    if path is None:
        sys.exit("no chromium: apt-get install chromium")
    with tempfile.TemporaryDirectory() as folder:
        server = KeyturnServer(Path(folder))
        server.start()
        try:
            seed(server)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
                context = browser.new_context(
                    base_url=server.url,
                    viewport={"width": 1280, "height": 800},
                    locale="en-US",
                    timezone_id="UTC",
                )
                page = context.new_page()

                page.goto("/admin")
                page.get_by_label("Email").fill(ADMIN_EMAIL)
                shoot(page, "admin-sign-in.png", full_page=False)

                sign_in(page)
                expect(page.get_by_role("link", name=FEATURED)).to_be_visible()
                shoot(page, "admin-users.png")

                open_user(page, FEATURED)
                session_row(page, "192.0.2.40").get_by_role("button", name="Revoke").click()
                confirm(page, "End session")
                expect(page.locator("#status")).to_contain_text("Revoked")
                page.get_by_label("Show").select_option(label="All sessions")
                expect(page.get_by_text("All sessions: 3")).to_be_visible()
                shoot(page, "admin-user-sessions.png")

                page.get_by_role("link", name="Audit log", exact=True).click()
                expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
                shoot(page, "admin-audit-log.png", full_page=False)

                phone = browser.new_context(
                    base_url=server.url,
                    viewport={"width": 390, "height": 844},
                    locale="en-US",
                    timezone_id="UTC",
                )
                mobile = phone.new_page()
                sign_in(mobile)
                open_user(mobile, FEATURED)
                shoot(mobile, "admin-phone.png")
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
