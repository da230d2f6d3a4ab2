"""Driving the admin console in tests: signing in, finding a user, confirming a dialog."""

from __future__ import annotations

import uuid

from playwright.sync_api import Locator, Page, expect

from tests.admin.server import ADMIN_EMAIL, KeyturnServer
from tests.conftest import PASSWORD

FIREFOX_ON_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME_ON_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
SAFARI_ON_IOS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
HOSTILE = "<img src=x onerror=alert(1)>"


def new_email(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}@example.com"


def sign_in(page: Page, email: str = ADMIN_EMAIL) -> None:
    page.goto("/admin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def open_user(page: Page, email: str) -> None:
    page.get_by_role("link", name="Users", exact=True).click()
    page.get_by_label("Search by email").fill(email)
    page.get_by_role("link", name=email).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(email)


def session_row(page: Page, address: str) -> Locator:
    return page.get_by_role("row").filter(has=page.get_by_role("cell", name=address, exact=True))


def notice(page: Page) -> Locator:
    """The line where the console reports the result of an action."""
    return page.locator("#status")


def confirm(page: Page, action: str) -> None:
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name=action, exact=True).click()
    expect(dialog).to_be_hidden()


def active_session_count(server: KeyturnServer, user_id: str) -> int:
    body = server.gql(
        "query ($id: ID!) { user(id: $id) { activeSessionCount } }",
        {"id": user_id},
        token=server.admin_token(),
    )
    count: int = body["data"]["user"]["activeSessionCount"]
    return count
