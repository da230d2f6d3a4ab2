"""The admin console: users, their sessions and the audit log (Chromium, a real server)."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Page, expect

from tests.admin.conftest import Watch
from tests.admin.pages import (
    CHROME_ON_WINDOWS,
    FIREFOX_ON_LINUX,
    HOSTILE,
    SAFARI_ON_IOS,
    confirm,
    new_email,
    notice,
    open_user,
    session_row,
    sign_in,
)
from tests.admin.server import ADMIN_EMAIL, KeyturnServer
from tests.conftest import LOGIN, PASSWORD


def test_a_session_shows_its_device_and_address(page: Page, server: KeyturnServer) -> None:
    email = new_email("device")
    server.create_user(email)
    server.login(email, user_agent=FIREFOX_ON_LINUX, address="203.0.113.7")
    server.login(email, user_agent=SAFARI_ON_IOS, address="203.0.113.70")

    sign_in(page)
    open_user(page, email)

    firefox = session_row(page, "203.0.113.7")
    expect(firefox).to_contain_text("Firefox on Linux")
    expect(firefox).to_contain_text("Active")
    expect(session_row(page, "203.0.113.70")).to_contain_text("Safari on iOS")
    expect(page.get_by_role("button", name="Revoke")).to_have_count(2)


def test_the_console_marks_its_own_session(page: Page) -> None:
    sign_in(page)
    open_user(page, ADMIN_EMAIL)

    current = page.get_by_role("row").filter(has_text="This console")
    expect(current).to_have_count(1)
    expect(current).to_contain_text("Headless Chrome on Linux")


def test_revoke_ends_that_session_only(page: Page, server: KeyturnServer) -> None:
    email = new_email("revoke")
    server.create_user(email)
    firefox = server.login(email, user_agent=FIREFOX_ON_LINUX, address="203.0.113.10")
    chrome = server.login(email, user_agent=CHROME_ON_WINDOWS, address="203.0.113.11")

    sign_in(page)
    open_user(page, email)
    row = session_row(page, "203.0.113.10")

    row.get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    expect(row).to_be_visible()
    assert "errors" not in server.gql("{ me { email } }", token=firefox["accessToken"])

    row = session_row(page, "203.0.113.10")
    row.get_by_role("button", name="Revoke").click()
    confirm(page, "End session")

    expect(notice(page)).to_have_text("Revoked the session of Firefox on Linux (203.0.113.10).")
    expect(session_row(page, "203.0.113.10")).to_have_count(0)
    expect(session_row(page, "203.0.113.11")).to_contain_text("Chrome on Windows")
    assert server.refresh_error(firefox["refreshToken"]) == "INVALID_REFRESH_TOKEN"
    me = server.gql("{ me { email } }", token=firefox["accessToken"])
    assert me["errors"][0]["extensions"]["code"] == "TOKEN_REVOKED"
    assert server.refresh_error(chrome["refreshToken"]) is None


def test_revoked_sessions_are_listed_with_their_reason(page: Page, server: KeyturnServer) -> None:
    email = new_email("listed")
    server.create_user(email)
    server.login(email, user_agent=FIREFOX_ON_LINUX, address="203.0.113.12")

    sign_in(page)
    open_user(page, email)
    session_row(page, "203.0.113.12").get_by_role("button", name="Revoke").click()
    confirm(page, "End session")
    expect(page.get_by_text("No active sessions.")).to_be_visible()
    # The row and its button are gone: the focus goes to the section's heading.
    expect(page.get_by_role("heading", name="Sessions")).to_be_focused()

    page.get_by_label("Show").select_option(label="All sessions")
    row = session_row(page, "203.0.113.12")
    expect(row).to_contain_text("Revoked")
    expect(row).to_contain_text("revoked by an admin")
    expect(row.get_by_role("button", name="Revoke")).to_have_count(0)


def test_sign_out_everywhere_ends_every_session(page: Page, server: KeyturnServer) -> None:
    email = new_email("everywhere")
    server.create_user(email)
    sessions = [
        server.login(email, user_agent=agent, address=f"203.0.113.{20 + i}")
        for i, agent in enumerate([FIREFOX_ON_LINUX, CHROME_ON_WINDOWS, SAFARI_ON_IOS])
    ]

    sign_in(page)
    open_user(page, email)
    expect(page.get_by_role("button", name="Revoke")).to_have_count(3)
    page.get_by_role("button", name="Sign out everywhere").click()
    confirm(page, "End all sessions")

    expect(notice(page)).to_have_text(f"Signed {email} out everywhere: 3 sessions ended.")
    expect(page.get_by_text("No active sessions.")).to_be_visible()
    for session in sessions:
        assert server.refresh_error(session["refreshToken"]) == "INVALID_REFRESH_TOKEN"


def test_a_hostile_user_agent_is_shown_as_text_and_runs_nothing(
    page: Page, server: KeyturnServer, watch: Watch
) -> None:
    email = new_email("hostile")
    server.create_user(email)
    server.login(email, user_agent=HOSTILE, address="203.0.113.30")

    sign_in(page)
    open_user(page, email)

    row = session_row(page, "203.0.113.30")
    expect(row).to_contain_text(HOSTILE)
    expect(row).to_contain_text("Unknown device")
    page.get_by_role("link", name="Audit log", exact=True).click()
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    page.get_by_role("link", name="Users", exact=True).click()
    open_user(page, email)
    expect(page.locator("img")).to_have_count(0)
    assert watch.dialogs == []


def test_deactivate_then_activate_a_user(page: Page, server: KeyturnServer) -> None:
    email = new_email("inactive")
    server.create_user(email)
    session = server.login(email, address="203.0.113.40")

    sign_in(page)
    open_user(page, email)
    page.get_by_role("button", name="Deactivate", exact=True).click()
    confirm(page, "Deactivate account")

    expect(notice(page)).to_have_text(f"Deactivated {email}: signed out everywhere.")
    expect(page.locator(".profile")).to_contain_text("Deactivated")
    # The focus stays with the account's actions, on the control now in the button's place
    # (before, the reload dropped it on the page's body).
    expect(page.get_by_role("button", name="Activate", exact=True)).to_be_focused()
    assert server.refresh_error(session["refreshToken"]) == "INVALID_REFRESH_TOKEN"
    refused = server.gql(LOGIN, {"email": email, "password": PASSWORD, "d": "BODY"})
    assert refused["errors"][0]["extensions"]["code"] == "ACCOUNT_DISABLED"

    page.get_by_role("button", name="Activate", exact=True).click()

    expect(notice(page)).to_have_text(f"Activated {email}.")
    server.login(email)


def test_change_role_after_confirmation(page: Page, server: KeyturnServer) -> None:
    email = new_email("promoted")
    server.create_user(email)

    sign_in(page)
    open_user(page, email)
    page.get_by_label("Role", exact=True).select_option("ADMIN")
    page.get_by_role("button", name="Change role").click()
    confirm(page, "Make admin")

    expect(notice(page)).to_have_text(f"{email} is now an admin.")
    assert server.login(email)["user"]["role"] == "ADMIN"

    page.get_by_label("Role", exact=True).select_option("USER")
    page.get_by_role("button", name="Change role").click()
    confirm(page, "Make user")
    expect(notice(page)).to_have_text(f"{email} is now a regular user.")
    assert server.login(email)["user"]["role"] == "USER"


def test_the_last_admin_guard_is_shown_as_an_error(page: Page, server: KeyturnServer) -> None:
    server.only_admin()  # the guard's condition; otherwise this would demote the console's admin
    sign_in(page)
    open_user(page, ADMIN_EMAIL)
    page.get_by_label("Role", exact=True).select_option("USER")
    page.get_by_role("button", name="Change role").click()
    confirm(page, "Make user")

    expect(page.get_by_role("alert").filter(has_text="last active admin")).to_be_visible()


def test_users_are_searched_and_paged(page: Page, server: KeyturnServer) -> None:
    domain = f"paging-{uuid.uuid4().hex[:6]}.example.com"
    token = server.admin_token()
    for i in range(21):
        server.create_user(f"user{i:02d}@{domain}", token=token)

    sign_in(page)
    page.get_by_label("Search by email").fill(domain)

    expect(page.get_by_text(f"21 users matching “{domain}”")).to_be_visible()
    expect(page.get_by_role("link", name=re.compile(domain))).to_have_count(20)
    page.get_by_role("button", name="Next page").click()
    expect(page.get_by_role("link", name=re.compile(domain))).to_have_count(1)
    expect(page.get_by_role("link", name=f"user20@{domain}")).to_be_visible()
    # Counted with the first page only, and still shown on the next.
    expect(page.get_by_text(f"21 users matching “{domain}”")).to_be_visible()
    page.get_by_role("button", name="Previous page").click()
    expect(page.get_by_role("link", name=f"user00@{domain}")).to_be_visible()


def test_the_audit_log_is_filtered_by_user_and_kind(page: Page, server: KeyturnServer) -> None:
    email = new_email("audited")
    server.create_user(email)
    session = server.login(email, user_agent=FIREFOX_ON_LINUX, address="203.0.113.50")
    refresh_token = session["refreshToken"]
    for _ in range(51):
        body = server.gql(
            "mutation ($t: String!) { refresh(refreshToken: $t) { refreshToken } }",
            {"t": refresh_token},
        )
        refresh_token = body["data"]["refresh"]["refreshToken"]

    sign_in(page)
    page.get_by_role("link", name="Audit log", exact=True).click()
    page.get_by_label("User email").fill(email)
    page.get_by_label("Kind").select_option("refreshed")
    page.get_by_role("button", name="Filter").click()

    rows = page.get_by_role("row").filter(has_text="Refreshed")
    expect(rows).to_have_count(50)
    expect(rows.first).to_contain_text(email)
    page.get_by_role("button", name="Next page").click()
    expect(rows).to_have_count(1)

    # Filters live in the address, so a reload keeps them.
    page.reload()
    expect(page.get_by_label("User email")).to_have_value(email)
    expect(page.get_by_role("row").filter(has_text="Refreshed")).to_have_count(50)

    page.get_by_label("Kind").select_option("")
    page.get_by_role("button", name="Filter").click()
    newest = page.get_by_role("row").nth(1)
    expect(newest).to_contain_text("Refreshed")
    expect(page.get_by_role("row").filter(has_text="User created")).to_have_count(0)


def test_an_audit_event_names_the_session_the_user_page_lists(
    page: Page, server: KeyturnServer
) -> None:
    email = new_email("ended")
    server.create_user(email)
    session_id = server.login(email, user_agent=FIREFOX_ON_LINUX, address="203.0.113.60")[
        "session"
    ]["id"]
    server.login(email, user_agent=SAFARI_ON_IOS, address="203.0.113.61")
    ended = server.gql(
        "mutation ($id: ID!) { revokeSession(sessionId: $id) { status } }",
        {"id": session_id},
        token=server.admin_token(),
    )
    assert ended["data"]["revokeSession"]["status"] == "REVOKED", ended

    sign_in(page)
    page.get_by_role("link", name="Audit log", exact=True).click()
    page.get_by_label("Kind").select_option("session_revoked")
    page.get_by_role("button", name="Filter").click()
    event = page.get_by_role("row").filter(has_text=email)
    expect(event).to_have_count(1)
    tag = event.get_by_role("cell").filter(has=page.locator("code.session-id"))
    expect(tag).to_have_text(session_id[:8])
    expect(tag.locator("code")).to_have_attribute("title", session_id)

    # The same short id marks that session, and only that one, on the user's page.
    open_user(page, email)
    page.get_by_label("Show").select_option(label="All sessions")
    expect(session_row(page, "203.0.113.60")).to_contain_text(f"Session {session_id[:8]}")
    expect(session_row(page, "203.0.113.61")).not_to_contain_text(session_id[:8])


def test_an_unknown_email_in_the_audit_filter_says_so(page: Page) -> None:
    sign_in(page)
    page.get_by_role("link", name="Audit log", exact=True).click()
    page.get_by_label("User email").fill("nobody@example.com")
    page.get_by_role("button", name="Filter").click()

    expect(page.get_by_role("alert").filter(has_text="No user has the email")).to_be_visible()


@pytest.mark.parametrize("width", [320, 375])
def test_a_long_email_fits_its_card_on_a_phone(
    page: Page, server: KeyturnServer, width: int
) -> None:
    email = new_email("very.long.firstname.lastname.at.some")
    server.create_user(email)
    page.set_viewport_size({"width": width, "height": 800})
    sign_in(page)
    page.get_by_label("Search by email").fill(email)
    expect(page.get_by_text("1 user matching")).to_be_visible()
    link = page.get_by_role("link", name=email)
    # Every line of the email inside its cell and on the screen (before, its first part ran
    # past the card's edge and was cut off).
    overflow = link.evaluate(
        """(link) => {
            const cell = link.closest("td").getBoundingClientRect();
            const edge = Math.min(cell.right, document.documentElement.clientWidth);
            const lines = [...link.getClientRects()].filter((line) => line.right > edge + 0.5);
            return lines.length + (link.scrollWidth > link.clientWidth + 1 ? 1 : 0);
        }"""
    )
    assert overflow == 0
