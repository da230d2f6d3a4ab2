"""login and register: tokens, sessions, delivery, and the errors of each."""

from __future__ import annotations

import logging
import time

import jwt
import pytest

from models import AuditEvent, Role
from models import User as UserRow
from tests.conftest import ACCESS_SECRET, LOGIN, PASSWORD, REFRESH_SECRET, AppFactory, Harness

ME = "{ me { id email role isActive tokenVersion lastLoginAt activeSessionCount } }"
REGISTER = """
mutation ($email: String!, $password: String!, $d: RefreshTokenDelivery!) {
  register(input: {email: $email, password: $password, refreshTokenDelivery: $d}) {
    accessToken refreshToken user { id email role } session { id status }
  }
}
"""


async def test_login_in_body_mode_returns_both_tokens_and_no_cookie(
    api: Harness, user: UserRow
) -> None:
    result = await api.gql(
        LOGIN,
        {"email": "  USER@Example.com ", "password": PASSWORD, "d": "BODY"},
        headers={"User-Agent": "KeyturnTest/1.0"},
    )
    payload = result.data["login"]
    assert payload["refreshToken"]
    assert "set-cookie" not in result.response.headers
    assert result.response.headers["cache-control"] == "no-store"
    assert payload["user"]["email"] == "user@example.com"
    assert payload["session"]["status"] == "ACTIVE"
    assert payload["session"]["isCurrent"] is True
    assert payload["session"]["userAgent"] == "KeyturnTest/1.0"
    assert payload["session"]["ipAddress"] == "127.0.0.1"

    header = jwt.get_unverified_header(payload["accessToken"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "HS256"
    assert header["kid"]
    claims = jwt.decode(
        payload["accessToken"], ACCESS_SECRET, algorithms=["HS256"], audience="keyturn"
    )
    assert claims["sub"] == str(user.id) == payload["user"]["id"]
    assert claims["sid"] == payload["session"]["id"]
    assert claims["ver"] == 0
    assert claims["role"] == "user"
    assert claims["iss"] == "keyturn"
    assert claims["exp"] - claims["iat"] == 900
    assert claims["jti"]

    refresh_header = jwt.get_unverified_header(payload["refreshToken"])
    assert refresh_header["typ"] == "rt+jwt"
    assert refresh_header["kid"] != header["kid"]
    refresh_claims = jwt.decode(
        payload["refreshToken"], REFRESH_SECRET, algorithms=["HS256"], audience="keyturn"
    )
    assert refresh_claims["exp"] - refresh_claims["iat"] == 604800
    assert refresh_claims["sid"] == claims["sid"]


async def test_login_in_cookie_mode_sets_a_strict_httponly_cookie(
    api: Harness, user: UserRow
) -> None:
    result = await api.gql(
        LOGIN, {"email": "user@example.com", "password": PASSWORD, "d": "COOKIE"}
    )
    payload = result.data["login"]
    assert payload["refreshToken"] is None
    cookie = result.response.headers["set-cookie"]
    assert cookie.startswith("refresh_token=")
    parts = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")}
    assert "httponly" in parts
    assert "secure" in parts
    assert parts["samesite"].lower() == "samesite=strict"
    assert parts["path"] == "Path=/graphql"
    assert parts["max-age"] == "Max-Age=604800"


async def test_login_is_the_default_cookie_delivery(api: Harness, user: UserRow) -> None:
    result = await api.gql(
        'mutation ($p: String!) { login(input: {email: "user@example.com", password: $p}) '
        "{ refreshToken } }",
        {"p": PASSWORD},
    )
    assert result.data["login"]["refreshToken"] is None
    assert "refresh_token=" in result.response.headers["set-cookie"]


async def test_me_with_the_access_token(api: Harness, user: UserRow) -> None:
    payload = await api.login()
    result = await api.gql(ME, token=payload["accessToken"])
    me = result.data["me"]
    assert me["email"] == "user@example.com"
    assert me["role"] == "USER"
    assert me["isActive"] is True
    assert me["activeSessionCount"] == 1
    assert me["lastLoginAt"] is not None


async def test_me_is_served_from_the_access_check_without_a_query_of_its_own(
    api: Harness, user: UserRow, caplog: pytest.LogCaptureFixture
) -> None:
    token = (await api.login())["accessToken"]
    first = await api.gql("{ me { id email createdAt } }", token=token)  # the check reads the row
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
        again = await api.gql("{ me { id email createdAt } }", token=token)
    queries = [r for r in caplog.records if r.name == "tortoise.db_client"]
    assert queries == []  # the cached check answered both the check and the fields
    assert again.data == first.data
    assert again.data["me"]["id"] == str(user.id)
    assert again.data["me"]["email"] == user.email


async def test_me_shows_a_later_login_at_once(api: Harness, user: UserRow) -> None:
    token = (await api.login())["accessToken"]
    before = (await api.gql(ME, token=token)).data["me"]["lastLoginAt"]
    api.clock.advance(60)
    await api.login()  # another device; the first session's check is cached
    after = (await api.gql(ME, token=token)).data["me"]
    assert after["lastLoginAt"] != before
    assert after["lastLoginAt"] == (await UserRow.get(id=user.id)).last_login_at.isoformat()
    assert after["activeSessionCount"] == 2


async def test_bearer_scheme_is_case_insensitive(api: Harness, user: UserRow) -> None:
    payload = await api.login()
    result = await api.gql(ME, headers={"Authorization": f"bEaReR {payload['accessToken']}"})
    assert result.data["me"]["email"] == "user@example.com"


@pytest.mark.parametrize(
    ("email", "password"),
    [("user@example.com", "wrong password!"), ("nobody@example.com", PASSWORD)],
)
async def test_wrong_password_and_unknown_email_get_the_same_answer(
    api: Harness, user: UserRow, email: str, password: str
) -> None:
    result = await api.gql(LOGIN, {"email": email, "password": password, "d": "BODY"})
    assert result.codes == ["INVALID_CREDENTIALS"]
    assert result.errors[0]["message"] == "Invalid email or password."
    assert result.data is None


async def test_unknown_email_costs_a_password_verification(api: Harness, user: UserRow) -> None:
    async def timed(email: str) -> float:
        samples = []
        for _ in range(3):
            start = time.perf_counter()
            await api.gql(LOGIN, {"email": email, "password": "wrong password!", "d": "BODY"})
            samples.append(time.perf_counter() - start)
        return sorted(samples)[1]

    known, unknown = await timed("user@example.com"), await timed("nobody@example.com")
    # Both run one argon2id verification; without the dummy hash the unknown email would be
    # answered an order of magnitude faster.
    assert unknown > known * 0.5


async def test_failed_logins_are_audited_with_and_without_a_user(
    api: Harness, user: UserRow
) -> None:
    await api.gql(LOGIN, {"email": "user@example.com", "password": "nope-nope", "d": "BODY"})
    await api.gql(LOGIN, {"email": "Ghost@Example.com", "password": "nope-nope", "d": "BODY"})
    events = await AuditEvent.filter(kind="login_failed").order_by("created_at")
    assert len(events) == 2
    by_user = {event.user_id: event for event in events}
    assert by_user[user.id].detail is None
    assert by_user[None].detail == {"email": "ghost@example.com"}


async def test_disabled_account_with_the_right_password(api: Harness, user: UserRow) -> None:
    await UserRow.filter(id=user.id).update(is_active=False)
    result = await api.gql(LOGIN, {"email": "user@example.com", "password": PASSWORD, "d": "BODY"})
    assert result.codes == ["ACCOUNT_DISABLED"]
    wrong = await api.gql(
        LOGIN, {"email": "user@example.com", "password": "bad-bad-bad", "d": "BODY"}
    )
    assert wrong.codes == ["INVALID_CREDENTIALS"]


async def test_login_upgrades_a_hash_made_with_weaker_parameters(
    api: Harness, user: UserRow
) -> None:
    from argon2 import PasswordHasher

    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    await UserRow.filter(id=user.id).update(password_hash=weak)
    await api.login()
    stored = (await UserRow.get(id=user.id)).password_hash
    assert stored != weak
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_successful_login_is_audited_and_updates_last_login(
    api: Harness, user: UserRow
) -> None:
    api.clock.advance(60)
    payload = await api.login()
    event = await AuditEvent.get(kind="login_succeeded")
    assert event.user_id == user.id
    assert str(event.session_id) == payload["session"]["id"]
    assert event.ip_address == "127.0.0.1"
    refreshed = await UserRow.get(id=user.id)
    assert refreshed.last_login_at == api.clock.now


async def test_register_opens_a_session(api: Harness) -> None:
    result = await api.gql(
        REGISTER, {"email": " New@Example.com", "password": "a fine password", "d": "BODY"}
    )
    payload = result.data["register"]
    assert payload["user"]["email"] == "new@example.com"
    assert payload["user"]["role"] == "USER"
    assert payload["session"]["status"] == "ACTIVE"
    me = await api.gql(ME, token=payload["accessToken"])
    assert me.data["me"]["email"] == "new@example.com"
    assert await AuditEvent.filter(kind="registered").count() == 1


@pytest.mark.parametrize(
    ("email", "password", "field"),
    [
        ("not-an-email", "a fine password", "email"),
        ("user@example.com", "a fine password", "email"),
        ("x@example.com", "short", "password"),
        ("x@example.com", "p" * 129, "password"),
        ("nul\x00@example.com", "a fine password", "email"),
        ("x@example.com", "nul\x00 in the password", "password"),
    ],
)
async def test_register_rejects_bad_input_with_the_field(
    api: Harness, user: UserRow, email: str, password: str, field: str
) -> None:
    result = await api.gql(REGISTER, {"email": email, "password": password, "d": "BODY"})
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.errors[0]["extensions"]["field"] == field
    assert await UserRow.all().count() == 1


async def test_register_when_registration_is_closed(app_factory: AppFactory) -> None:
    api = await app_factory(registration_open=False)
    result = await api.gql(
        REGISTER, {"email": "x@example.com", "password": "a fine password", "d": "BODY"}
    )
    assert result.codes == ["REGISTRATION_CLOSED"]
    assert await UserRow.all().count() == 0


async def test_admin_role_in_claims(api: Harness) -> None:
    await api.create_user("boss@example.com", role=Role.ADMIN)
    payload = await api.login("boss@example.com")
    claims = jwt.decode(
        payload["accessToken"], ACCESS_SECRET, algorithms=["HS256"], audience="keyturn"
    )
    assert claims["role"] == "admin"
    assert payload["user"]["role"] == "ADMIN"


async def test_a_login_ignores_an_existing_refresh_cookie(api: Harness, user: UserRow) -> None:
    first = await api.gql(LOGIN, {"email": "user@example.com", "password": PASSWORD, "d": "COOKIE"})
    old_cookie = api.client.cookies.get("refresh_token")
    second = await api.gql(
        LOGIN, {"email": "user@example.com", "password": PASSWORD, "d": "COOKIE"}
    )
    assert second.data["login"]["session"]["id"] != first.data["login"]["session"]["id"]
    assert api.client.cookies.get("refresh_token") != old_cookie
