"""refresh: rotation, the grace window, reuse detection, expiry, and failures mid-rotation."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import jwt
import pytest

import models.sessions as sessions_module
from api.tokens import TokenService
from models import AuditEvent
from models import Session as SessionRow
from models import User as UserRow
from models.sessions import SessionStatus, session_status
from tests.conftest import REFRESH_SECRET, Harness

REFRESH = """
mutation ($t: String, $d: RefreshTokenDelivery) {
  refresh(refreshToken: $t, refreshTokenDelivery: $d) {
    accessToken refreshToken refreshTokenExpiresAt session { id status }
  }
}
"""
REFRESH_COOKIE = "mutation { refresh { accessToken refreshToken session { id } } }"
ME = "{ me { id } }"


def jti(refresh_token: str) -> uuid.UUID:
    claims = jwt.decode(
        refresh_token,
        REFRESH_SECRET,
        algorithms=["HS256"],
        audience="keyturn",
        options={"verify_iat": False, "verify_exp": False},  # the test clock runs ahead
    )
    return uuid.UUID(claims["jti"])


async def rotate(api: Harness, token: str, **variables: Any) -> dict[str, Any]:
    result = await api.gql(REFRESH, {"t": token, **variables})
    assert not result.errors, result.errors
    payload: dict[str, Any] = result.data["refresh"]
    return payload


async def status_of(api: Harness, session_id: str) -> tuple[SessionStatus, SessionRow]:
    row = await SessionRow.get(id=session_id)
    user = await UserRow.get(id=row.user_id)
    return session_status(row, user.token_version, api.clock()), row


async def test_refresh_rotates_the_token(api: Harness, user: UserRow) -> None:
    login = await api.login()
    api.clock.advance(5)
    payload = await rotate(api, login["refreshToken"])
    assert payload["refreshToken"] != login["refreshToken"]
    assert payload["accessToken"] != login["accessToken"]
    assert payload["session"]["id"] == login["session"]["id"]
    row = await SessionRow.get(id=login["session"]["id"])
    assert row.current_token_id == jti(payload["refreshToken"])
    assert row.previous_token_id == jti(login["refreshToken"])
    me = await api.gql(ME, token=payload["accessToken"])
    assert me.data["me"]["id"] == str(user.id)
    assert await AuditEvent.filter(kind="refreshed", user_id=user.id).count() == 1


async def test_refresh_answers_the_way_the_token_came(api: Harness, user: UserRow) -> None:
    await api.login(delivery="COOKIE")
    by_cookie = await api.gql(REFRESH_COOKIE)
    assert by_cookie.data["refresh"]["refreshToken"] is None
    assert "refresh_token=" in by_cookie.response.headers["set-cookie"]

    login = await api.login(delivery="BODY")
    by_argument = await api.gql(REFRESH, {"t": login["refreshToken"]})
    assert by_argument.data["refresh"]["refreshToken"]
    assert "set-cookie" not in by_argument.response.headers

    switched = await api.gql(
        REFRESH, {"t": by_argument.data["refresh"]["refreshToken"], "d": "COOKIE"}
    )
    assert switched.data["refresh"]["refreshToken"] is None
    assert "refresh_token=" in switched.response.headers["set-cookie"]


async def test_a_cookie_refreshed_into_the_body_is_cleared(api: Harness, user: UserRow) -> None:
    # Its token is rotated out by this refresh: left in the browser, its next use after the
    # grace window read as theft and revoked the session.
    login = await api.login(delivery="COOKIE")
    moved = await api.gql(REFRESH, {"d": "BODY"})
    assert moved.data["refresh"]["refreshToken"]
    cleared = moved.response.headers["set-cookie"]
    assert cleared.startswith('refresh_token="";') or cleared.startswith("refresh_token=;")
    assert "Max-Age=0" in cleared
    assert api.client.cookies.get("refresh_token") is None
    api.clock.advance(60)
    # The session lives on, through the token the body carried.
    onward = await api.gql(REFRESH, {"t": moved.data["refresh"]["refreshToken"]})
    assert not onward.errors, onward.errors
    status, _ = await status_of(api, login["session"]["id"])
    assert status is SessionStatus.ACTIVE


async def test_an_empty_token_argument_is_a_token_not_the_cookie(
    api: Harness, user: UserRow
) -> None:
    # "From the argument if given, else from the cookie": an empty one is given. Before, it
    # fell back to the cookie and rotated that session.
    await api.login(delivery="COOKIE")
    cookie = api.client.cookies.get("refresh_token")
    refused = await api.gql(REFRESH, {"t": ""})
    assert refused.codes == ["INVALID_REFRESH_TOKEN"]
    assert api.client.cookies.get("refresh_token") == cookie  # neither rotated nor cleared
    assert not (await api.gql(REFRESH_COOKIE)).errors


async def test_cookie_refresh_chain_keeps_working(api: Harness, user: UserRow) -> None:
    await api.login(delivery="COOKIE")
    seen = set()
    for _ in range(3):
        api.clock.advance(30)
        result = await api.gql(REFRESH_COOKIE)
        assert not result.errors, result.errors
        seen.add(api.client.cookies.get("refresh_token"))
    assert len(seen) == 3


async def test_previous_token_inside_the_grace_window_gets_the_same_chain(
    api: Harness, user: UserRow
) -> None:
    login = await api.login()
    winner = await rotate(api, login["refreshToken"])
    api.clock.advance(9)
    second_tab = await rotate(api, login["refreshToken"])
    # The very token the winner got: one chain, not two.
    assert second_tab["refreshToken"] == winner["refreshToken"]
    status, _ = await status_of(api, login["session"]["id"])
    assert status is SessionStatus.ACTIVE
    me = await api.gql(ME, token=second_tab["accessToken"])
    assert not me.errors
    # The chain goes on from the shared token.
    assert (await rotate(api, winner["refreshToken"]))["refreshToken"]


async def test_the_grace_window_is_never_shorter_than_the_setting(
    api: Harness, user: UserRow
) -> None:
    # The rotation is stored on its whole second; measured from there with the exact time, a
    # rotation late in its second left up to a second less than the setting.
    login = await api.login()
    api.clock.advance(0.9)
    winner = await rotate(api, login["refreshToken"])
    api.clock.advance(api.settings.refresh_reuse_grace - 0.2)  # inside the window, just
    second_tab = await rotate(api, login["refreshToken"])
    assert second_tab["refreshToken"] == winner["refreshToken"]


async def test_previous_token_after_the_grace_window_revokes_the_session(
    api: Harness, user: UserRow
) -> None:
    login = await api.login()
    current = await rotate(api, login["refreshToken"])
    api.clock.advance(11)
    result = await api.gql(REFRESH, {"t": login["refreshToken"]})
    assert result.codes == ["REFRESH_TOKEN_REUSED"]

    status, row = await status_of(api, login["session"]["id"])
    assert status is SessionStatus.REVOKED
    assert row.revoked_reason == "reuse_detected"
    event = await AuditEvent.get(kind="refresh_reuse_detected")
    assert event.user_id == user.id
    assert str(event.session_id) == login["session"]["id"]
    # The thief's victim is signed out too: access and refresh tokens of the session are dead.
    me = await api.gql(ME, token=current["accessToken"])
    assert me.codes == ["TOKEN_REVOKED"]
    again = await api.gql(REFRESH, {"t": current["refreshToken"]})
    assert again.codes == ["INVALID_REFRESH_TOKEN"]


async def test_grandparent_token_inside_the_window_is_reuse(api: Harness, user: UserRow) -> None:
    login = await api.login()
    second = await rotate(api, login["refreshToken"])
    await rotate(api, second["refreshToken"])
    api.clock.advance(1)
    result = await api.gql(REFRESH, {"t": login["refreshToken"]})
    assert result.codes == ["REFRESH_TOKEN_REUSED"]
    status, _ = await status_of(api, login["session"]["id"])
    assert status is SessionStatus.REVOKED


async def test_reusing_the_previous_token_does_not_extend_the_window(
    api: Harness, user: UserRow
) -> None:
    login = await api.login()
    await rotate(api, login["refreshToken"])
    for _ in range(2):
        api.clock.advance(5)
        await rotate(api, login["refreshToken"])
    api.clock.advance(1)  # 11 s after the rotation, 1 s after the last accepted retry
    result = await api.gql(REFRESH, {"t": login["refreshToken"]})
    assert result.codes == ["REFRESH_TOKEN_REUSED"]


async def test_a_zero_grace_window_treats_any_retry_as_reuse(app_factory: Any) -> None:
    api: Harness = await app_factory(refresh_reuse_grace=0)
    await api.create_user()
    login = await api.login()
    await rotate(api, login["refreshToken"])
    result = await api.gql(REFRESH, {"t": login["refreshToken"]})
    assert result.codes == ["REFRESH_TOKEN_REUSED"]


async def test_concurrent_refreshes_leave_exactly_one_live_chain(
    api: Harness, user: UserRow
) -> None:
    login = await api.login()
    results = await asyncio.gather(
        *(api.gql(REFRESH, {"t": login["refreshToken"]}) for _ in range(20))
    )
    assert all(r.response.status_code == 200 for r in results)
    assert all(not r.errors for r in results), [r.errors for r in results if r.errors]
    tokens = {r.data["refresh"]["refreshToken"] for r in results}
    assert len(tokens) == 1
    (token,) = tokens
    row = await SessionRow.get(id=login["session"]["id"])
    assert row.revoked_at is None
    assert row.current_token_id == jti(token)
    assert row.previous_token_id == jti(login["refreshToken"])
    assert await AuditEvent.filter(kind="refreshed").count() == 1
    assert await SessionRow.filter(user_id=user.id).count() == 1


async def test_idle_expiry_slides_with_each_rotation(api: Harness, user: UserRow) -> None:
    login = await api.login()
    token = login["refreshToken"]
    for _ in range(3):  # 18 days in all, never idle for 7
        api.clock.advance(6 * 86400)
        token = (await rotate(api, token))["refreshToken"]
    api.clock.advance(7 * 86400 + 1)
    result = await api.gql(REFRESH, {"t": token})
    assert result.codes == ["INVALID_REFRESH_TOKEN"]
    status, _ = await status_of(api, login["session"]["id"])
    assert status is SessionStatus.EXPIRED


async def test_absolute_session_age_never_slides(api: Harness, user: UserRow) -> None:
    login = await api.login()
    token = login["refreshToken"]
    for _ in range(4):  # day 24
        api.clock.advance(6 * 86400)
        token = (await rotate(api, token))["refreshToken"]
    api.clock.advance(6 * 86400)  # day 30: idle for 6 days only, but the session is 30 days old
    result = await api.gql(REFRESH, {"t": token})
    assert result.codes == ["INVALID_REFRESH_TOKEN"]


async def test_access_token_of_an_expired_session_is_refused(api: Harness, user: UserRow) -> None:
    login = await api.login()
    api.clock.advance(14 * 60)
    assert not (await api.gql(ME, token=login["accessToken"])).errors
    api.clock.advance(61)
    assert (await api.gql(ME, token=login["accessToken"])).codes == ["TOKEN_EXPIRED"]


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c"])
async def test_malformed_refresh_tokens(api: Harness, token: str) -> None:
    result = await api.gql(REFRESH, {"t": token})
    assert result.codes == ["INVALID_REFRESH_TOKEN"]


async def test_refresh_without_any_token(api: Harness) -> None:
    result = await api.gql(REFRESH_COOKIE)
    assert result.codes == ["INVALID_REFRESH_TOKEN"]


async def test_refresh_of_a_deactivated_user_fails(api: Harness, user: UserRow) -> None:
    login = await api.login()
    await UserRow.filter(id=user.id).update(is_active=False)
    result = await api.gql(REFRESH, {"t": login["refreshToken"]})
    assert result.codes == ["INVALID_REFRESH_TOKEN"]


async def test_refresh_token_for_a_session_that_no_longer_exists(
    api: Harness, user: UserRow
) -> None:
    login = await api.login()
    await SessionRow.filter(id=login["session"]["id"]).delete()
    result = await api.gql(REFRESH, {"t": login["refreshToken"]})
    assert result.codes == ["INVALID_REFRESH_TOKEN"]


async def test_a_failure_inside_the_rotation_rolls_it_back(
    api: Harness, user: UserRow, monkeypatch: pytest.MonkeyPatch
) -> None:
    login = await api.login()
    before = await SessionRow.get(id=login["session"]["id"])

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("crash after the compare-and-set, before the response")

    with monkeypatch.context() as patch:
        patch.setattr(TokenService, "issue_refresh", explode)
        result = await api.gql(REFRESH, {"t": login["refreshToken"]})
    assert result.codes == ["INTERNAL_SERVER_ERROR"]
    assert "crash" not in result.response.text
    assert "Traceback" not in result.response.text

    after = await SessionRow.get(id=login["session"]["id"])
    assert after.current_token_id == before.current_token_id
    assert after.previous_token_id is None
    assert after.revoked_at is None
    assert await AuditEvent.filter(kind="refreshed").count() == 0
    # The token was not consumed: it rotates normally, it is not mistaken for reuse.
    payload = await rotate(api, login["refreshToken"])
    assert jti(payload["refreshToken"]) != before.current_token_id


REFUSE_EVENTS = {
    "sqlite": [
        "CREATE TRIGGER refuse_events BEFORE INSERT ON audit_events "
        "BEGIN SELECT RAISE(ABORT, 'the audit store refused'); END"
    ],
    "postgres": [
        "CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'the audit store refused'; END $$",
        "CREATE TRIGGER refuse_events BEFORE INSERT ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION refuse_event()",
    ],
}
ALLOW_EVENTS = {
    "sqlite": ["DROP TRIGGER refuse_events"],
    "postgres": ["DROP TRIGGER refuse_events ON audit_events", "DROP FUNCTION refuse_event()"],
}


async def test_an_audit_event_that_cannot_be_written_undoes_the_rotation(
    api: Harness, user: UserRow, backend: str
) -> None:
    login = await api.login()
    before = await SessionRow.get(id=login["session"]["id"])
    db = SessionRow._meta.db
    for statement in REFUSE_EVENTS[backend]:
        await db.execute_script(statement)
    try:
        result = await api.gql(REFRESH, {"t": login["refreshToken"]})
    finally:
        for statement in ALLOW_EVENTS[backend]:
            await db.execute_script(statement)
    assert result.codes == ["INTERNAL_SERVER_ERROR"]
    assert "audit store" not in result.response.text

    after = await SessionRow.get(id=login["session"]["id"])
    assert after.current_token_id == before.current_token_id
    assert after.previous_token_id is None
    assert after.rotated_at == before.rotated_at
    assert await AuditEvent.filter(kind="refreshed").count() == 0
    # The token was not consumed: it rotates normally, it is not mistaken for reuse.
    payload = await rotate(api, login["refreshToken"])
    assert jti(payload["refreshToken"]) != before.current_token_id


async def test_a_refresh_of_the_current_token_is_one_round_trip(
    api: Harness, user: UserRow, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    login = await api.login()
    if backend == "postgres":
        # tortoise logs each statement it sends: one, the compare-and-set and its audit event.
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
            payload = await rotate(api, login["refreshToken"])
        sent = [r.getMessage() for r in caplog.records if r.name == "tortoise.db_client"]
        assert len(sent) == 1, sent
        assert sent[0].startswith("WITH rotated AS (UPDATE")
    else:
        # SQLite: one transaction on the loop's write connection, nothing through aiosqlite's
        # thread; SQLite itself reports what ran on each.
        ran: list[str] = []
        through_thread: list[str] = []
        client = SessionRow._meta.db
        writer = client._writer or client._open_writer()  # type: ignore[attr-defined]
        writer.set_trace_callback(ran.append)
        thread = client._connection  # type: ignore[attr-defined]
        await thread.set_trace_callback(through_thread.append)
        try:
            payload = await rotate(api, login["refreshToken"])
        finally:
            writer.set_trace_callback(None)
            await thread.set_trace_callback(None)
        kinds = [statement.split()[0] for statement in ran]
        assert kinds == ["BEGIN", "UPDATE", "INSERT", "SELECT", "COMMIT"], ran
        assert through_thread == []
    assert payload["session"]["id"] == login["session"]["id"]
    assert await AuditEvent.filter(kind="refreshed").count() == 1


FULL_PAYLOAD = """
mutation ($t: String) {
  refresh(refreshToken: $t, refreshTokenDelivery: BODY) {
    accessToken refreshToken
    user { id email role isActive tokenVersion }
    session { id status isCurrent lastUsedAt expiresAt revokedAt }
  }
}
"""


async def test_the_payloads_user_and_session_are_the_rows_as_rotated(
    api: Harness, user: UserRow
) -> None:
    login = await api.login()
    api.clock.advance(42)
    result = await api.gql(FULL_PAYLOAD, {"t": login["refreshToken"]})
    assert not result.errors, result.errors
    payload = result.data["refresh"]
    assert payload["user"] == {
        "id": str(user.id),
        "email": user.email,
        "role": "USER",
        "isActive": True,
        "tokenVersion": user.token_version,
    }
    row = await SessionRow.get(id=login["session"]["id"])
    session = payload["session"]
    assert session["id"] == login["session"]["id"]
    assert session["status"] == "ACTIVE"
    assert session["isCurrent"] is True
    assert session["revokedAt"] is None
    assert session["lastUsedAt"] == row.last_used_at.isoformat()
    assert row.last_used_at == api.clock().replace(microsecond=0)
    assert session["expiresAt"] == min(row.expires_at, row.absolute_expires_at).isoformat()


async def test_a_refresh_that_selects_only_tokens_decodes_no_row(
    api: Harness, user: UserRow, monkeypatch: pytest.MonkeyPatch
) -> None:
    login = await api.login()
    decoded: list[str] = []
    real_decode = sessions_module.decode

    def counting_decode(model: Any, row: Any, prefix: str) -> Any:
        decoded.append(model.__name__)
        return real_decode(model, row, prefix)

    monkeypatch.setattr(sessions_module, "decode", counting_decode)
    tokens_only = "mutation ($t: String) { refresh(refreshToken: $t) { accessToken refreshToken } }"
    first = await api.gql(tokens_only, {"t": login["refreshToken"]})
    assert first.data["refresh"]["accessToken"]
    assert decoded == []
    await api.gql(FULL_PAYLOAD, {"t": first.data["refresh"]["refreshToken"]})
    assert sorted(decoded) == ["Session", "User"]  # once each, for both fields
