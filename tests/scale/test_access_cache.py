"""The access check's cache, as the revocation broadcast drives it, in process.

Revocations heard from other instances arrive as `drop_session` / `drop_user`; they must end
every cached answer they concern at once, including an answer whose query was still running.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from api import access
from api.errors import AuthError
from api.revocation import START_WAIT, RevocationBus
from models import Session as SessionRow
from models import User as UserRow
from tests.conftest import REDIS_HOST, REDIS_PORT, Harness, port_open, require_service


async def check(api: Harness, token: str) -> str:
    try:
        await api.kt.access.authenticate(token)
    except AuthError as exc:
        return exc.code.value
    return "OK"


async def test_dropping_a_user_ends_every_cached_session_of_that_user_only(
    api: Harness, user: UserRow
) -> None:
    other = await api.create_user("other@example.com")
    phone, laptop = await api.login(), await api.login()
    bystander = await api.login("other@example.com")
    tokens = [s["accessToken"] for s in (phone, laptop, bystander)]
    assert [await check(api, t) for t in tokens] == ["OK", "OK", "OK"]

    # Another instance bumps the version: this one's cache still says yes until told.
    await UserRow.filter(id=user.id).update(token_version=1)
    assert [await check(api, t) for t in tokens] == ["OK", "OK", "OK"]

    api.kt.access.drop_user(user.id)
    assert [await check(api, t) for t in tokens] == ["TOKEN_REVOKED", "TOKEN_REVOKED", "OK"]
    assert other.id != user.id


async def test_a_check_in_flight_during_a_revocation_does_not_cache_the_old_answer(
    api: Harness, user: UserRow, monkeypatch: pytest.MonkeyPatch
) -> None:
    login = await api.login()
    session_id = uuid.UUID(login["session"]["id"])
    read, release = asyncio.Event(), asyncio.Event()
    original = access.session_state

    async def slow_read(sid: uuid.UUID) -> tuple[dict[str, Any], dict[str, Any]] | None:
        found = await original(sid)  # the session is alive when read...
        read.set()
        await release.wait()  # ...and revoked before the answer is cached
        return found

    monkeypatch.setattr(access, "session_state", slow_read)
    in_flight = asyncio.create_task(check(api, login["accessToken"]))
    await read.wait()
    await SessionRow.filter(id=session_id).update(revoked_at=api.clock(), revoked_reason="x")
    api.kt.access.drop_session(session_id)
    release.set()
    assert await in_flight == "OK"  # it began before the revocation

    monkeypatch.setattr(access, "session_state", original)
    assert await check(api, login["accessToken"]) == "TOKEN_REVOKED"


async def test_a_revocation_made_here_is_handed_to_the_broadcast(
    api: Harness, user: UserRow
) -> None:
    heard: list[tuple[str, uuid.UUID]] = []

    class Recorder:
        def session_revoked(self, session_id: uuid.UUID) -> None:
            heard.append(("session", session_id))

        def user_revoked(self, user_id: uuid.UUID) -> None:
            heard.append(("user", user_id))

    api.kt.access.broadcast = Recorder()
    login = await api.login()
    logout = "mutation ($t: String) { logout(refreshToken: $t) }"
    await api.gql(logout, {"t": login["refreshToken"]})
    other = await api.login()
    await api.gql("mutation { logoutAll }", token=other["accessToken"])
    assert heard == [("session", uuid.UUID(login["session"]["id"])), ("user", user.id)]


async def test_the_revocation_bus_starts_as_soon_as_it_has_subscribed(api: Harness) -> None:
    # start() waits up to START_WAIT for its first attempt to subscribe, but a subscription
    # that worked never said so: every process (each worker) started 2 s late with Redis up.
    require_service("Redis", port_open(REDIS_HOST, REDIS_PORT))
    bus = RevocationBus(f"redis://{REDIS_HOST}:{REDIS_PORT}/0", api.kt.access, 1.0)
    started = time.monotonic()
    try:
        await bus.start()
        elapsed = time.monotonic() - started
        assert bus.connected
        assert elapsed < START_WAIT / 2, elapsed
    finally:
        await bus.stop()
