"""Property-based fuzzing over the real schema: whatever arrives, no answer is a server error.

hypothesis-graphql writes valid documents and documents with one schema violation each, from
the very SDL Keyturn serves; random text and random JSON variables cover what is not GraphQL at
all. Each runs signed in (as an admin, so every field is reachable) and anonymously, on both
databases. The examples of one test share one server, as a real server's requests do: that is
why the function-scoped fixture health check is suppressed, and on purpose.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema

from models import Role
from schema import sdl
from tests.conftest import Harness

SDL = sdl()
FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,  # no .hypothesis folder in the work tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
WITH_VARIABLES = [
    "query ($n: Int!, $a: String) { users(first: $n, after: $a) { totalCount } }",
    "query ($i: ID!, $s: [SessionStatus!]!)"
    " { userSessions(userId: $i, status: $s) { totalCount } }",
    "query ($k: [String!], $u: ID) { auditEvents(kinds: $k, userId: $u) { edges { cursor } } }",
    "mutation ($in: LoginInput!) { login(input: $in) { accessToken } }",
    "mutation ($in: RegisterInput!) { register(input: $in) { accessToken } }",
    "mutation ($t: String, $d: RefreshTokenDelivery) { refresh(refreshToken: $t,"
    " refreshTokenDelivery: $d) { accessToken } }",
    "mutation ($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n)"
    " { accessToken } }",
    "mutation ($in: CreateUserInput!) { createUser(input: $in) { id } }",
    "mutation ($i: ID!, $r: Role!) { setUserRole(userId: $i, role: $r) { id } }",
]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
requests = st.one_of(
    st.tuples(from_schema(SDL, mode=Mode.POSITIVE), st.just({})),
    st.tuples(from_schema(SDL, mode=Mode.NEGATIVE), st.just({})),
    st.tuples(
        st.sampled_from(WITH_VARIABLES), st.dictionaries(st.sampled_from("nasikudtcr"), json_values)
    ),
    st.tuples(st.sampled_from(WITH_VARIABLES), st.fixed_dictionaries({"in": json_values})),
    st.tuples(st.text(max_size=120), st.just({})),
)


@pytest.fixture
async def admin_token(api: Harness) -> str:
    await api.create_user()
    await api.create_user("admin@example.com", role=Role.ADMIN)
    return str((await api.login("admin@example.com"))["accessToken"])


async def assert_no_server_error(
    api: Harness, document: str, variables: dict[str, Any], token: str | None
) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await api.client.post(
        "/graphql", json={"query": document, "variables": variables}, headers=headers
    )
    assert response.status_code < 500, (document, response.text)
    body = response.json()
    codes = [error.get("extensions", {}).get("code") for error in body.get("errors") or []]
    assert "INTERNAL_SERVER_ERROR" not in codes, (document, variables, json.dumps(body)[:2000])
    assert all(codes), (document, body)


@FUZZ
@given(request=requests)
async def test_anonymous_requests_never_get_a_server_error(
    api: Harness, request: tuple[str, dict[str, Any]]
) -> None:
    await assert_no_server_error(api, *request, token=None)


@FUZZ
@given(request=requests)
async def test_signed_in_requests_never_get_a_server_error(
    api: Harness, admin_token: str, request: tuple[str, dict[str, Any]]
) -> None:
    await assert_no_server_error(api, *request, token=admin_token)
