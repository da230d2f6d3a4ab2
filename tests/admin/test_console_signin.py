"""The admin console: signing in and staying signed in (Chromium, a real server)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.admin.conftest import Watch
from tests.admin.pages import (
    FIREFOX_ON_LINUX,
    active_session_count,
    new_email,
    notice,
    open_user,
    session_row,
    sign_in,
)
from tests.admin.server import ADMIN_EMAIL, KeyturnServer
from tests.conftest import PASSWORD


def test_an_admin_signs_in_and_sees_the_users(page: Page, watch: Watch) -> None:
    page.goto("/admin")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    # Nothing but the form before signing in.
    expect(page.get_by_role("navigation", name="Console")).to_be_hidden()
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()

    sign_in(page)

    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    admin_row = page.get_by_role("row").filter(has_text=ADMIN_EMAIL)
    expect(admin_row).to_contain_text("Admin")
    expect(admin_row).to_contain_text("Active")
    # The access token stays in memory: not in storage, not in any address.
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert not [url for url in watch.requests if "eyJ" in url]


def test_the_page_sends_its_security_headers(page: Page) -> None:
    response = page.goto("/admin")
    assert response is not None
    headers = response.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"


def test_wrong_password_is_refused_with_a_message(page: Page) -> None:
    page.goto("/admin")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("alert").filter(has_text="Wrong email or password")).to_be_visible()
    expect(page.get_by_label("Password")).to_have_value("")


def test_reload_keeps_the_admin_signed_in(page: Page, server: KeyturnServer) -> None:
    email = new_email("reload")
    server.create_user(email)
    sign_in(page)
    open_user(page, email)

    page.reload()

    expect(page.get_by_role("heading", level=1)).to_have_text(email)
    expect(page.get_by_label("Password")).to_have_count(0)
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0


def test_a_non_admin_is_refused(page: Page, server: KeyturnServer) -> None:
    email = new_email("plain")
    user_id = server.create_user(email)

    sign_in(page, email)

    expect(page.get_by_role("alert").filter(has_text="not an admin")).to_be_visible()
    expect(page.get_by_role("heading", name="Users")).to_have_count(0)
    # The session that login opened was ended at once, and a reload does not resume it.
    assert active_session_count(server, user_id) == 0
    page.reload()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_signing_out_ends_the_console_session(page: Page) -> None:
    sign_in(page)
    expect(page.get_by_role("heading", name="Users")).to_be_visible()

    page.get_by_role("button", name="Sign out", exact=True).click()

    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    page.reload()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_an_expired_access_token_is_refreshed_and_the_call_retried(page: Page) -> None:
    sign_in(page)
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    operations: list[str] = []
    expired_once: list[bool] = []

    def expire_first_users_query(route: Route) -> None:
        body = route.request.post_data_json or {}
        operation = str(body.get("query", "")).split("(")[0].split("{")[0].strip()
        operations.append(operation)
        if operation == "query Users" and not expired_once:
            expired_once.append(True)
            error = {"message": "expired", "extensions": {"code": "TOKEN_EXPIRED"}}
            route.fulfill(json={"data": None, "errors": [error]})
            return
        route.fallback()

    page.route("**/graphql", expire_first_users_query)
    page.get_by_label("Search by email").fill(ADMIN_EMAIL)

    expect(page.get_by_text("1 user matching")).to_be_visible()
    assert operations == ["query Users", "mutation Refresh", "query Users"]


def test_the_token_is_refreshed_ahead_of_expiry(page: Page) -> None:
    page.clock.install()
    sign_in(page)
    expect(page.get_by_role("heading", name="Users")).to_be_visible()

    with page.expect_request(
        lambda request: "mutation Refresh" in (request.post_data or "")
    ) as refresh:
        # 14 minutes into the 15-minute access token: the refresh is due.
        page.clock.run_for("14:10")
    response = refresh.value.response()
    assert response is not None
    assert "errors" not in response.json()
    expect(page.get_by_role("heading", name="Users")).to_be_visible()


def test_a_revoked_console_session_returns_to_sign_in(page: Page, server: KeyturnServer) -> None:
    with page.expect_response(
        lambda response: "mutation SignIn" in (response.request.post_data or "")
    ) as login:
        sign_in(page)
    session_id = login.value.json()["data"]["login"]["session"]["id"]
    expect(page.get_by_role("heading", name="Users")).to_be_visible()

    body = server.gql(
        "mutation ($id: ID!) { revokeSession(sessionId: $id) { status } }",
        {"id": session_id},
        token=server.admin_token(),
    )
    assert body["data"]["revokeSession"]["status"] == "REVOKED"
    page.get_by_label("Search by email").fill("anyone")

    expect(page.get_by_role("alert").filter(has_text="revoked")).to_be_visible()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_the_access_token_is_copied_for_graphiql(page: Page, server: KeyturnServer) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    sign_in(page)
    page.get_by_role("button", name="Copy access token for GraphiQL").click()

    expect(notice(page)).to_contain_text("Copied an Authorization header")
    headers = json.loads(page.evaluate("navigator.clipboard.readText()"))
    token = headers["Authorization"].removeprefix("Bearer ")
    me = server.gql("{ me { email } }", token=token)
    assert me["data"]["me"]["email"] == ADMIN_EMAIL


def test_without_graphiql_the_console_names_no_graphiql(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # As production serves it, unless KEYTURN_GRAPHIQL turns it on: before, the console still
    # offered to copy a token "for GraphiQL", which answered 404 there.
    server = KeyturnServer(tmp_path_factory.mktemp("no-graphiql"), graphiql="false")
    # In a thread of its own: Playwright's sync API keeps an event loop running on this one,
    # and the start migrates with asyncio.run.
    with ThreadPoolExecutor(1) as starting:
        starting.submit(server.start).result()
    try:
        context = browser.new_context(base_url=server.url, locale="en-US", timezone_id="UTC")
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
        page = context.new_page()
        sign_in(page)
        expect(page.get_by_role("heading", name="Users")).to_be_visible()
        expect(page.get_by_role("link", name="GraphiQL")).to_have_count(0)
        expect(page.get_by_text("GraphiQL")).to_have_count(0)
        page.get_by_role("button", name="Copy access token", exact=True).click()
        expect(notice(page)).to_contain_text("Copied an Authorization header")
        expect(notice(page)).not_to_contain_text("GraphiQL")
        token = json.loads(page.evaluate("navigator.clipboard.readText()"))["Authorization"]
        me = server.gql("{ me { email } }", token=token.removeprefix("Bearer "))
        assert me["data"]["me"]["email"] == ADMIN_EMAIL
        context.close()
    finally:
        server.stop()


def test_keyboard_alone_signs_in_and_escape_cancels_a_confirmation(
    page: Page, server: KeyturnServer
) -> None:
    email = new_email("keyboard")
    server.create_user(email)
    server.login(email, user_agent=FIREFOX_ON_LINUX, address="203.0.113.60")
    page.goto("/admin")
    page.get_by_label("Email").focus()
    page.keyboard.type(ADMIN_EMAIL)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Users")).to_be_visible()

    open_user(page, email)
    session_row(page, "203.0.113.60").get_by_role("button", name="Revoke").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    expect(page.get_by_role("dialog").get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")

    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(session_row(page, "203.0.113.60")).to_contain_text("Active")
