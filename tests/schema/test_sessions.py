"""Ending sessions: logout, logoutAll, changePassword, revokeMySession; and mySessions."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest

from api.access import MAX_READS_AHEAD, Account, Principal
from api.auth import logout_all
from api.clients import ClientInfo
from models import AuditEvent, Role
from models import Session as SessionRow
from models import User as UserRow
from models.sessions import SessionStatus, revoked_reason, session_status
from tests.conftest import LOGIN, PASSWORD, Harness

ME = "{ me { id tokenVersion activeSessionCount } }"
REFRESH = "mutation ($t: String) { refresh(refreshToken: $t) { accessToken refreshToken } }"
LOGOUT = "mutation ($t: String) { logout(refreshToken: $t) }"
LOGOUT_ALL = "mutation { logoutAll }"
CHANGE_PASSWORD = """
mutation ($c: String!, $n: String!) {
  changePassword(currentPassword: $c, newPassword: $n, refreshTokenDelivery: BODY) {
    accessToken refreshToken session { id status isCurrent } user { tokenVersion }
  }
}
"""
MY_SESSIONS = "{ mySessions { id status isCurrent userAgent ipAddress user { email } } }"
REVOKE_MY = "mutation ($id: ID!) { revokeMySession(sessionId: $id) { id status revokedReason } }"


async def alive(api: Harness, login: dict[str, Any]) -> tuple[bool, bool]:
    """Whether the login's access token and its refresh token still work."""
    me = await api.gql(ME, token=login["accessToken"])
    refreshed = await api.gql(REFRESH, {"t": login["refreshToken"]})
    return not me.errors, not refreshed.errors


async def status_of(api: Harness, session_id: str) -> tuple[SessionStatus, str | None]:
    row = await SessionRow.get(id=session_id)
    user = await UserRow.get(id=row.user_id)
    now = api.clock()
    return session_status(row, user.token_version, now), revoked_reason(
        row, user.token_version, now
    )


async def test_logout_by_refresh_token_ends_only_that_session(api: Harness, user: UserRow) -> None:
    phone, laptop = await api.login(), await api.login()
    result = await api.gql(LOGOUT, {"t": phone["refreshToken"]})
    assert result.data == {"logout": True}
    # At once in this worker: no cache may keep the ended session alive.
    assert (await api.gql(ME, token=phone["accessToken"])).codes == ["TOKEN_REVOKED"]
    assert (await api.gql(REFRESH, {"t": phone["refreshToken"]})).codes == ["INVALID_REFRESH_TOKEN"]
    assert await alive(api, laptop) == (True, True)
    assert await status_of(api, phone["session"]["id"]) == (SessionStatus.REVOKED, "logout")
    assert await AuditEvent.filter(kind="logged_out", user_id=user.id).count() == 1


async def test_logout_by_cookie_clears_the_cookie(api: Harness, user: UserRow) -> None:
    login = await api.login(delivery="COOKIE")
    assert api.client.cookies.get("refresh_token")
    result = await api.gql("mutation { logout }")
    assert result.data == {"logout": True}
    assert 'refresh_token=""' in result.response.headers["set-cookie"]
    assert "Max-Age=0" in result.response.headers["set-cookie"]
    assert api.client.cookies.get("refresh_token") is None
    assert (await api.gql(ME, token=login["accessToken"])).codes == ["TOKEN_REVOKED"]


async def test_logout_with_only_the_access_token_ends_the_current_session(
    api: Harness, user: UserRow
) -> None:
    login = await api.login()
    result = await api.gql("mutation { logout }", token=login["accessToken"])
    assert result.data == {"logout": True}
    assert await alive(api, login) == (False, False)


async def test_logout_with_nothing_to_end(api: Harness) -> None:
    result = await api.gql("mutation { logout }")
    assert result.codes == ["INVALID_REFRESH_TOKEN"]


async def test_logout_is_idempotent(api: Harness, user: UserRow) -> None:
    login = await api.login()
    for _ in range(2):
        result = await api.gql(LOGOUT, {"t": login["refreshToken"]})
        assert result.data == {"logout": True}
    assert await AuditEvent.filter(kind="logged_out").count() == 1


async def test_logout_all_ends_every_session_of_the_caller_only(
    api: Harness, user: UserRow
) -> None:
    other = await api.create_user("other@example.com")
    sessions = [await api.login() for _ in range(3)]
    bystander = await api.login("other@example.com")

    result = await api.gql(LOGOUT_ALL, token=sessions[0]["accessToken"])
    assert result.data == {"logoutAll": True}
    for login in sessions:
        assert await alive(api, login) == (False, False)
        assert await status_of(api, login["session"]["id"]) == (
            SessionStatus.REVOKED,
            "sessions_revoked",
        )
    assert await alive(api, bystander) == (True, True)
    assert (await UserRow.get(id=user.id)).token_version == 1
    assert (await UserRow.get(id=other.id)).token_version == 0
    assert await AuditEvent.filter(kind="logged_out_all", user_id=user.id).count() == 1
    # A fresh login works at the new version.
    fresh = await api.login()
    me = await api.gql(ME, token=fresh["accessToken"])
    assert me.data["me"]["tokenVersion"] == 1
    assert me.data["me"]["activeSessionCount"] == 1


async def test_logout_all_needs_a_signed_in_caller(api: Harness) -> None:
    assert (await api.gql(LOGOUT_ALL)).codes == ["UNAUTHENTICATED"]


async def test_concurrent_token_version_bumps_lose_no_update(api: Harness, user: UserRow) -> None:
    login = await api.login()
    account = Account(user.email, user.created_at, user.last_login_at)
    principal = Principal(user.id, uuid.UUID(login["session"]["id"]), Role.USER, 0, account)
    await asyncio.gather(*(logout_all(api.kt, principal, ClientInfo()) for _ in range(5)))
    assert (await UserRow.get(id=user.id)).token_version == 5


async def test_change_password_opens_a_new_session_and_ends_the_others(
    api: Harness, user: UserRow
) -> None:
    here, elsewhere = await api.login(), await api.login()
    result = await api.gql(
        CHANGE_PASSWORD, {"c": PASSWORD, "n": "a brand new passphrase"}, token=here["accessToken"]
    )
    payload = result.data["changePassword"]
    assert payload["user"]["tokenVersion"] == 1
    assert payload["session"]["status"] == "ACTIVE"
    assert payload["session"]["isCurrent"] is True
    assert await alive(api, here) == (False, False)
    assert await alive(api, elsewhere) == (False, False)
    assert not (await api.gql(ME, token=payload["accessToken"])).errors

    old = await api.gql(LOGIN, {"email": "user@example.com", "password": PASSWORD, "d": "BODY"})
    assert old.codes == ["INVALID_CREDENTIALS"]
    await api.login(password="a brand new passphrase")
    changed = await UserRow.get(id=user.id)
    assert changed.password_changed_at == api.clock.now
    event = await AuditEvent.get(kind="password_changed", user_id=user.id)
    assert event.actor_id is None  # the user's own act, not an admin's


async def test_change_password_with_a_wrong_current_password(api: Harness, user: UserRow) -> None:
    login = await api.login()
    result = await api.gql(
        CHANGE_PASSWORD,
        {"c": "not my password", "n": "a brand new passphrase"},
        token=login["accessToken"],
    )
    assert result.codes == ["INVALID_CREDENTIALS"]
    assert await alive(api, login) == (True, True)


async def test_change_password_to_a_weak_one(api: Harness, user: UserRow) -> None:
    login = await api.login()
    result = await api.gql(
        CHANGE_PASSWORD, {"c": PASSWORD, "n": "short"}, token=login["accessToken"]
    )
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.errors[0]["extensions"]["field"] == "newPassword"
    assert (await UserRow.get(id=user.id)).token_version == 0


async def test_my_sessions_lists_own_active_sessions(api: Harness, user: UserRow) -> None:
    await api.create_user("other@example.com")
    await api.login("other@example.com")
    old = await api.login(headers={"User-Agent": "Old phone"})
    await api.gql(LOGOUT, {"t": old["refreshToken"]})
    first = await api.login(headers={"User-Agent": "Firefox"})
    second = await api.login(headers={"User-Agent": "Safari"})

    result = await api.gql(MY_SESSIONS, token=second["accessToken"])
    sessions = {s["id"]: s for s in result.data["mySessions"]}
    assert set(sessions) == {first["session"]["id"], second["session"]["id"]}
    assert sessions[second["session"]["id"]]["isCurrent"] is True
    assert sessions[first["session"]["id"]]["isCurrent"] is False
    assert sessions[first["session"]["id"]]["userAgent"] == "Firefox"
    assert all(s["user"]["email"] == "user@example.com" for s in sessions.values())
    assert all(s["status"] == "ACTIVE" for s in sessions.values())


async def test_revoke_my_session(api: Harness, user: UserRow) -> None:
    here, there = await api.login(), await api.login()
    result = await api.gql(REVOKE_MY, {"id": there["session"]["id"]}, token=here["accessToken"])
    assert result.data["revokeMySession"] == {
        "id": there["session"]["id"],
        "status": "REVOKED",
        "revokedReason": "revoked_by_user",
    }
    assert await alive(api, there) == (False, False)
    assert await alive(api, here) == (True, True)
    event = await AuditEvent.get(kind="session_revoked")
    assert (event.user_id, event.session_id) == (user.id, uuid.UUID(there["session"]["id"]))
    # `actor` is the admin who acted (DESIGN): none when users end their own sessions, as
    # for logout and logoutAll, so that actor = null tells self-service from admin action.
    assert event.actor_id is None


async def test_revoke_my_session_refuses_other_users_sessions(api: Harness, user: UserRow) -> None:
    await api.create_user("other@example.com")
    theirs = await api.login("other@example.com")
    mine = await api.login()
    result = await api.gql(REVOKE_MY, {"id": theirs["session"]["id"]}, token=mine["accessToken"])
    assert result.codes == ["FORBIDDEN"]
    assert await alive(api, theirs) == (True, True)


async def test_revoke_my_session_with_unknown_and_malformed_ids(
    api: Harness, user: UserRow
) -> None:
    login = await api.login()
    unknown = await api.gql(REVOKE_MY, {"id": str(uuid.uuid4())}, token=login["accessToken"])
    assert unknown.codes == ["NOT_FOUND"]
    malformed = await api.gql(REVOKE_MY, {"id": "not-a-uuid"}, token=login["accessToken"])
    assert malformed.codes == ["BAD_USER_INPUT"]
    assert malformed.errors[0]["extensions"]["field"] == "sessionId"


async def test_deactivated_user_access_token_is_revoked(api: Harness, user: UserRow) -> None:
    login = await api.login()
    await UserRow.filter(id=user.id).update(is_active=False)
    api.kt.access.forget_user(user.id)
    assert (await api.gql(ME, token=login["accessToken"])).codes == ["TOKEN_REVOKED"]


async def test_revocation_by_another_worker_bites_within_the_cache_ttl(
    api: Harness, user: UserRow
) -> None:
    """A write this process did not make (another worker's) is seen once the cache entry ages."""
    login = await api.login()
    assert not (await api.gql(ME, token=login["accessToken"])).errors  # cached now
    await SessionRow.filter(id=login["session"]["id"]).update(
        revoked_at=api.clock.now, revoked_reason="admin"
    )
    await asyncio.sleep(api.settings.revocation_cache_ttl + 0.05)
    assert (await api.gql(ME, token=login["accessToken"])).codes == ["TOKEN_REVOKED"]


async def test_sibling_fields_share_one_access_check(
    api: Harness, user: UserRow, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = 0
    authenticate = api.kt.access.authenticate

    async def counted(token: str) -> Principal:
        nonlocal checks
        checks += 1
        await asyncio.sleep(0.01)  # the siblings arrive while the first check is running
        return await authenticate(token)

    monkeypatch.setattr(api.kt.access, "authenticate", counted)
    login = await api.login()
    siblings = "{ me { id } mySessions { id } again: me { email } }"
    result = await api.gql(siblings, token=login["accessToken"])
    assert not result.errors, result.errors
    assert result.data["again"]["email"] == "user@example.com"
    assert checks == 1

    await api.gql(LOGOUT_ALL, token=login["accessToken"])
    refused = await api.gql(siblings, token=login["accessToken"])
    assert refused.codes == ["TOKEN_REVOKED"]
    assert checks == 3  # this request's one check, and the logout's


async def test_revoking_a_session_ended_by_a_bump_keeps_its_reason(
    api: Harness, user: UserRow
) -> None:
    old = await api.login()
    await api.gql(LOGOUT_ALL, token=old["accessToken"])
    fresh = await api.login()
    result = await api.gql(REVOKE_MY, {"id": old["session"]["id"]}, token=fresh["accessToken"])
    assert result.data["revokeMySession"]["revokedReason"] == "sessions_revoked"
    assert await AuditEvent.filter(kind="session_revoked").count() == 0


def access_reads(caplog: pytest.LogCaptureFixture) -> int:
    """Queries logged since the last caplog.clear() (`{ me { id } }` makes only the check's)."""
    return sum(1 for record in caplog.records if record.name == "tortoise.db_client")


async def test_a_busy_session_is_re_read_ahead_and_never_waits_for_the_database(
    api: Harness, user: UserRow, caplog: pytest.LogCaptureFixture
) -> None:
    ttl = api.settings.revocation_cache_ttl
    token = (await api.login())["accessToken"]
    with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
        caplog.clear()
        assert not (await api.gql("{ me { id } }", token=token)).errors
        assert access_reads(caplog) == 1  # the first check reads the row
        await asyncio.sleep(ttl * 0.6)
        caplog.clear()
        assert not (await api.gql("{ me { id } }", token=token)).errors  # from the cache...
        await asyncio.sleep(0.1)
        assert access_reads(caplog) == 1  # ...while the row was read again behind it
        await asyncio.sleep(ttl * 0.5)  # the first read is now older than the TTL
        caplog.clear()
        assert not (await api.gql("{ me { id } }", token=token)).errors
        assert access_reads(caplog) == 0  # answered by the read made ahead


async def test_no_more_than_max_reads_ahead_run_at_once(
    api: Harness, user: UserRow, caplog: pytest.LogCaptureFixture
) -> None:
    ttl = api.settings.revocation_cache_ttl
    tokens = [(await api.login())["accessToken"] for _ in range(MAX_READS_AHEAD + 2)]
    for token in tokens:
        await api.kt.access.authenticate(token)  # each session's row read and cached
    await asyncio.sleep(ttl * 0.6)
    with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
        caplog.clear()
        # Every check answers from the cache, and each would start a read ahead; all of them
        # run before any of those reads, so the bound alone decides how many start.
        await asyncio.gather(*(api.kt.access.authenticate(token) for token in tokens))
        await asyncio.sleep(0.1)
        assert access_reads(caplog) == MAX_READS_AHEAD
        await asyncio.sleep(ttl * 0.5)  # the first reads are older than the TTL now
        caplog.clear()
        # gather ran the checks in order: the last two were refused a read ahead, so their
        # answers are too old now and each of their next checks reads the row.
        for token in tokens[MAX_READS_AHEAD:]:
            await api.kt.access.authenticate(token)
        assert access_reads(caplog) == 2


async def test_a_revocation_still_bites_within_the_ttl_with_reads_ahead(
    api: Harness, user: UserRow
) -> None:
    ttl = api.settings.revocation_cache_ttl
    login = await api.login()
    token = login["accessToken"]
    assert not (await api.gql("{ me { id } }", token=token)).errors
    await asyncio.sleep(ttl * 0.6)
    assert not (await api.gql("{ me { id } }", token=token)).errors  # starts a read ahead
    await asyncio.sleep(0.05)
    # Revoked by a write this process does not hear of (another worker without Redis).
    await SessionRow.filter(id=login["session"]["id"]).update(
        revoked_at=api.clock.now, revoked_reason="admin"
    )
    await asyncio.sleep(ttl + 0.05)
    assert (await api.gql("{ me { id } }", token=token)).codes == ["TOKEN_REVOKED"]


async def test_concurrent_checks_of_one_session_share_one_read(
    api: Harness, user: UserRow, caplog: pytest.LogCaptureFixture
) -> None:
    token = (await api.login())["accessToken"]
    with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
        caplog.clear()
        results = await asyncio.gather(*(api.gql("{ me { id } }", token=token) for _ in range(10)))
        assert all(not result.errors for result in results)
        assert access_reads(caplog) == 1
