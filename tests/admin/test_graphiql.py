"""GraphiQL at GET /graphql, served from Keyturn: it works with every other host blocked."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

from admin.graphiql import assets_installed
from tests.admin.conftest import Watch
from tests.admin.pages import sign_in
from tests.admin.server import ADMIN_EMAIL, KeyturnServer
from tests.conftest import IN_CI, PASSWORD

pytestmark = pytest.mark.skipif(
    not IN_CI and not assets_installed(),
    reason="GraphiQL's assets are not installed: run `make install`",
)

QUERY_EDITOR = '.monaco-editor[data-uri$="operation.graphql"]'
HEADERS_EDITOR = '.monaco-editor[data-uri$="request-headers.json"]'
RESPONSE = ".graphiql-response"


def run_in_graphiql(page: Page, query: str) -> dict[str, object]:
    page.locator(QUERY_EDITOR).click()
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.press("Delete")
    # Typed key by key: Monaco closes each brace as it opens, and types over it.
    page.keyboard.type(query)
    page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()
    response = page.locator(RESPONSE)
    expect(response).to_contain_text('"data"')
    # Monaco draws spaces as no-break spaces.
    result: dict[str, object] = json.loads(response.inner_text().replace("\xa0", " "))
    return result


def test_graphiql_runs_me_with_a_pasted_token_and_nothing_from_another_host(
    page: Page, server: KeyturnServer, watch: Watch
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    # The developer's path: copy a token in the console, paste it into GraphiQL's headers.
    sign_in(page)
    page.get_by_role("button", name="Copy access token for GraphiQL").click()
    expect(page.locator("#status")).to_contain_text("Copied")
    pasted = json.loads(page.evaluate("navigator.clipboard.readText()"))
    token = pasted["Authorization"].removeprefix("Bearer ")

    page.goto("/graphql")
    expect(page.get_by_role("button", name="Headers")).to_be_visible()
    page.get_by_role("button", name="Headers").click()
    page.locator(HEADERS_EDITOR).click()
    page.keyboard.press("ControlOrMeta+V")
    expect(page.locator(HEADERS_EDITOR)).to_contain_text("Authorization")

    result = run_in_graphiql(page, "{ me { email } }")

    assert result == {"data": {"me": {"email": ADMIN_EMAIL}}}
    assert watch.blocked == []
    assert any("/graphiql/graphiql.js" in url for url in watch.requests)
    # Headers carry the token: GraphiQL's saved tabs and history must not keep them.
    assert token not in page.evaluate("JSON.stringify(localStorage)")


def test_graphiql_sends_the_refresh_cookie_with_its_requests(page: Page) -> None:
    sign_in(page)
    expect(page.get_by_role("heading", name="Users")).to_be_visible()

    page.goto("/graphql")
    result = run_in_graphiql(page, "mutation { refresh { user { email } } }")

    assert result == {"data": {"refresh": {"user": {"email": ADMIN_EMAIL}}}}


VARIABLES_EDITOR = '.monaco-editor[data-uri$="variables.json"]'


def test_a_login_run_in_graphiql_leaves_no_password_in_the_browser(
    page: Page, server: KeyturnServer
) -> None:
    # GraphiQL's opening tab suggests running `login` here. Its saved tabs and history kept
    # the password, in the document's text or in the variables, on the console's origin.
    email = "graphiql-login@example.com"
    server.create_user(email)
    page.goto("/graphql")
    literal = (
        f'mutation {{ login(input: {{email: "{email}", password: "{PASSWORD}", '
        "refreshTokenDelivery: BODY}) { user { email } } }"
    )
    assert run_in_graphiql(page, literal) == {"data": {"login": {"user": {"email": email}}}}

    page.get_by_role("button", name="Variables").click()
    page.locator(VARIABLES_EDITOR).click()
    page.keyboard.type(f'{{"input": {{"email": "{email}", "password": "{PASSWORD}"')
    by_variables = "mutation ($input: LoginInput!) { login(input: $input) { user { email } } }"
    assert run_in_graphiql(page, by_variables) == {"data": {"login": {"user": {"email": email}}}}
    page.reload()  # and whatever GraphiQL writes as it leaves
    expect(page.locator(QUERY_EDITOR)).to_be_visible()

    stored = page.evaluate("JSON.stringify(localStorage)")
    assert "login(input: $input)" in stored  # the history is kept...
    assert email in stored
    assert PASSWORD not in stored  # ...without the password
    assert PASSWORD.replace(" ", "\\u00a0") not in stored
