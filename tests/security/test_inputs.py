"""Hostile input in every argument: NUL bytes, huge strings, bad ids and cursors.

PostgreSQL refuses NUL in text where SQLite stores it, so unchecked input would answer
differently (or fail) on one of them. Every case here expects the same code on both.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from models import Role
from tests.conftest import PASSWORD, Harness

NUL = "a\x00b"
HUGE = "x" * 30_000
CHANGE = """
mutation ($c: String!, $n: String!) {
  changePassword(currentPassword: $c, newPassword: $n, refreshTokenDelivery: BODY) { accessToken }
}
"""


def cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


# (query, variables, expected codes), run signed in as an admin.
CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "mutation ($e: String!, $p: String!) { login(input: {email: $e, password: $p}) "
        "{ accessToken } }",
        {"e": NUL, "p": PASSWORD},
        ["INVALID_CREDENTIALS"],
    ),
    (
        "mutation ($e: String!, $p: String!) { login(input: {email: $e, password: $p}) "
        "{ accessToken } }",
        {"e": "user@example.com", "p": NUL * 10},
        ["INVALID_CREDENTIALS"],
    ),
    (
        "mutation ($e: String!, $p: String!) { login(input: {email: $e, password: $p}) "
        "{ accessToken } }",
        {"e": HUGE, "p": HUGE},
        ["INVALID_CREDENTIALS"],
    ),
    (
        "mutation ($e: String!, $p: String!) { register(input: {email: $e, password: $p}) "
        "{ accessToken } }",
        {"e": f"{NUL}@example.com", "p": "a fine password"},
        ["BAD_USER_INPUT"],
    ),
    (
        "mutation ($e: String!, $p: String!) { register(input: {email: $e, password: $p}) "
        "{ accessToken } }",
        {"e": f"{'x' * 300}@example.com", "p": "a fine password"},
        ["BAD_USER_INPUT"],
    ),
    (
        "mutation ($e: String!, $p: String!) { register(input: {email: $e, password: $p}) "
        "{ accessToken } }",
        {"e": "not an email", "p": "a fine password"},
        ["BAD_USER_INPUT"],
    ),
    (
        "mutation ($e: String!, $p: String!) { register(input: {email: $e, password: $p}) "
        "{ accessToken } }",
        {"e": "fresh@example.com", "p": f"quartz kestrel {NUL} lantern"},
        ["BAD_USER_INPUT"],
    ),
    (
        "mutation ($t: String) { refresh(refreshToken: $t) { accessToken } }",
        {"t": NUL},
        ["INVALID_REFRESH_TOKEN"],
    ),
    (
        "mutation ($t: String) { refresh(refreshToken: $t) { accessToken } }",
        {"t": HUGE},
        ["INVALID_REFRESH_TOKEN"],
    ),
    ("mutation ($t: String) { logout(refreshToken: $t) }", {"t": NUL}, ["INVALID_REFRESH_TOKEN"]),
    (CHANGE, {"c": NUL, "n": "a brand new passphrase"}, ["INVALID_CREDENTIALS"]),
    (CHANGE, {"c": PASSWORD, "n": f"quartz kestrel {NUL} lantern"}, ["BAD_USER_INPUT"]),
    (
        "mutation ($i: ID!) { revokeMySession(sessionId: $i) { id } }",
        {"i": NUL},
        ["BAD_USER_INPUT"],
    ),
    ("query ($s: String) { users(search: $s) { totalCount } }", {"s": NUL}, ["BAD_USER_INPUT"]),
    ("query ($s: String) { users(search: $s) { totalCount } }", {"s": HUGE}, ["BAD_USER_INPUT"]),
    ("query ($a: String) { users(after: $a) { totalCount } }", {"a": NUL}, ["BAD_USER_INPUT"]),
    ("query ($a: String) { users(after: $a) { totalCount } }", {"a": HUGE}, ["BAD_USER_INPUT"]),
    ("query ($i: ID!) { user(id: $i) { id } }", {"i": NUL}, ["BAD_USER_INPUT"]),
    ("query ($i: ID!) { userSessions(userId: $i) { totalCount } }", {"i": NUL}, ["BAD_USER_INPUT"]),
    (
        "query ($k: [String!]) { auditEvents(kinds: $k) { pageInfo { hasNextPage } } }",
        {"k": [NUL]},
        ["BAD_USER_INPUT"],
    ),
    (
        "query ($k: [String!]) { auditEvents(kinds: $k) { pageInfo { hasNextPage } } }",
        {"k": ["x"] * 1000},
        ["BAD_USER_INPUT"],
    ),
    (
        "query ($a: String) { auditEvents(after: $a) { pageInfo { hasNextPage } } }",
        {"a": cursor(NUL, NUL)},
        ["BAD_USER_INPUT"],
    ),
    (
        'mutation ($e: String!) { createUser(input: {email: $e, password: "a fine password"})'
        " { id } }",
        {"e": f"{NUL}@example.com"},
        ["BAD_USER_INPUT"],
    ),
    ("mutation ($i: ID!) { revokeSession(sessionId: $i) { id } }", {"i": NUL}, ["BAD_USER_INPUT"]),
    (
        "mutation ($i: ID!) { revokeUserSessions(userId: $i) { id } }",
        {"i": HUGE},
        ["BAD_USER_INPUT"],
    ),
    (
        "mutation ($i: ID!) { setUserActive(userId: $i, isActive: false) { id } }",
        {"i": NUL},
        ["BAD_USER_INPUT"],
    ),
    (
        "mutation ($i: ID!) { setUserRole(userId: $i, role: ADMIN) { id } }",
        {"i": NUL},
        ["BAD_USER_INPUT"],
    ),
]


@pytest.fixture
async def signed_in(api: Harness) -> str:
    await api.create_user()
    await api.create_user("admin@example.com", role=Role.ADMIN)
    return str((await api.login("admin@example.com"))["accessToken"])


@pytest.mark.parametrize(("query", "variables", "expected"), CASES)
async def test_hostile_input_gets_the_same_clear_answer_on_both_databases(
    api: Harness, signed_in: str, query: str, variables: dict[str, Any], expected: list[str]
) -> None:
    result = await api.gql(query, variables, token=signed_in)
    assert result.codes == expected, result


async def test_a_cursor_hiding_a_nul_byte_is_bad_input(api: Harness, signed_in: str) -> None:
    result = await api.gql(
        "query ($a: String) { users(after: $a) { totalCount } }",
        {"a": cursor(NUL)},
        token=signed_in,
    )
    assert result.codes == ["BAD_USER_INPUT"], result


def raw_cursor(text: bytes) -> str:
    """A cursor of our encoding around JSON text as given (escapes and all)."""
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


SESSIONS_AFTER = (
    "query ($u: ID!, $a: String) { userSessions(userId: $u, after: $a) { totalCount } }"
)
EVENTS_AFTER = "query ($a: String) { auditEvents(after: $a) { edges { cursor } } }"


@pytest.mark.parametrize(
    ("query", "after"),
    [
        # A lone surrogate, which json.loads makes of the escape and no database takes.
        ("users", raw_cursor(b'["a\\ud800b"]')),
        ("events", raw_cursor(b'["2026-01-01T00:00:00+00:00","\\udfff"]')),
        # Longer than any email.
        ("users", cursor("x" * 5000 + "@example.com")),
        # Times with no UTC equivalent within the calendar.
        ("sessions", cursor("0001-01-01T00:00:00+05:00", "00000000-0000-4000-8000-000000000000")),
        ("events", cursor("9999-12-31T23:59:59-05:00", "00000000-0000-4000-8000-000000000000")),
    ],
)
async def test_cursors_no_page_of_ours_could_give_are_bad_input(
    api: Harness, signed_in: str, query: str, after: str
) -> None:
    # Each was INTERNAL_SERVER_ERROR, found by the database or its driver.
    user = await api.create_user("someone@example.com")
    if query == "users":
        result = await api.gql(
            "query ($a: String) { users(after: $a) { totalCount } }", {"a": after}, token=signed_in
        )
    elif query == "sessions":
        result = await api.gql(SESSIONS_AFTER, {"u": str(user.id), "a": after}, token=signed_in)
    else:
        result = await api.gql(EVENTS_AFTER, {"a": after}, token=signed_in)
    assert result.codes == ["BAD_USER_INPUT"], result
    assert result.errors[0]["extensions"]["field"] == "after"


async def test_control_characters_in_headers_are_stored_cleanly(api: Harness) -> None:
    await api.create_user()
    payload = await api.login(headers={"User-Agent": "evil\x00agent\r\n" + "x" * 2000})
    session = payload["session"]
    assert "\x00" not in session["userAgent"]
    assert len(session["userAgent"]) <= 512
