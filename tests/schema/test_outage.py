"""With the database unreachable every operation answers SERVICE_UNAVAILABLE and nothing is lost."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.migrations import migrate
from api.postgres import CLOSE_WAIT
from models import AuditEvent
from models import Session as SessionRow
from tests.conftest import (
    BASE_URL,
    LOGIN,
    PASSWORD,
    PG_HOST,
    PG_PORT,
    FakeClock,
    Harness,
    empty_pg,
    make_settings,
    pg_admin,
    pg_url,
    port_open,
    require_service,
)
from tests.tcpproxy import TcpProxy

ME = "{ me { id } }"
REFRESH = "mutation ($t: String) { refresh(refreshToken: $t) { refreshToken } }"


MAX_FAILURES = 3


@dataclass
class Outage:
    api: Harness
    proxy: TcpProxy


@pytest.fixture
async def outage(pg_database: str | None, clock: FakeClock) -> AsyncIterator[Outage]:
    require_service("PostgreSQL", pg_database is not None)
    assert pg_database is not None
    await empty_pg(pg_database)
    proxy = TcpProxy(PG_HOST, PG_PORT)
    await proxy.start()
    settings = make_settings(
        # A statement whose answer never comes fails after 2 s, not asyncpg's 10, and a
        # connection is waited for 1 s, not 5.
        pg_url(pg_database, port=proxy.port) + "?command_timeout=2&timeout=1",
        revocation_cache_ttl=0,
        login_max_failures_per_account=MAX_FAILURES,
    )
    app = create_app(settings, clock)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client,
        ):
            yield Outage(Harness(app, client, settings, clock), proxy)
    finally:
        await proxy.stop()


async def test_every_operation_answers_service_unavailable(outage: Outage) -> None:
    api = outage.api
    await api.create_user()
    login = await api.login()
    await outage.proxy.stop()

    attempts = {
        "login": await api.gql(
            LOGIN, {"email": "user@example.com", "password": PASSWORD, "d": "BODY"}
        ),
        "me": await api.gql(ME, token=login["accessToken"]),
        "refresh": await api.gql(REFRESH, {"t": login["refreshToken"]}),
        "logout": await api.gql(
            "mutation ($t: String) { logout(refreshToken: $t) }", {"t": login["refreshToken"]}
        ),
        "logoutAll": await api.gql("mutation { logoutAll }", token=login["accessToken"]),
    }
    for name, result in attempts.items():
        assert result.response.status_code < 500, name
        assert result.codes == ["SERVICE_UNAVAILABLE"], (name, result)
        assert result.data is None, name  # never authenticates anyone
        assert "asyncpg" not in result.response.text
        # The address the service connects to stays out of the answer. The request id is
        # random hex, which may spell a port's digits, so it is left out of what is searched.
        answered = result.response.json()
        for error in answered["errors"]:
            assert error["extensions"].pop("requestId")
        shown = str(answered)
        for address in (PG_HOST, f"{outage.proxy.port}", f"{PG_PORT}"):
            assert address not in shown, (name, address)
    ready = await api.client.get("/readyz")
    assert ready.status_code == 503

    await outage.proxy.start()
    # The refresh that failed did not consume the token, and the session survived.
    result = await api.gql(REFRESH, {"t": login["refreshToken"]})
    assert not result.errors, result.errors
    row = await SessionRow.get(id=login["session"]["id"])
    assert row.revoked_at is None
    assert (await api.client.get("/readyz")).status_code == 200


async def test_logins_the_outage_left_unjudged_do_not_lock_the_account(outage: Outage) -> None:
    # Each login reserves a failure before its password is checked; one that ends without a
    # verdict gives it back. Before, an owner who kept trying through an outage was locked
    # out once the database came back, and at a higher lockout level.
    api = outage.api
    await api.create_user()
    right = {"email": "user@example.com", "password": PASSWORD, "d": "BODY"}
    wrong = {**right, "password": "not the password at all"}
    for _ in range(MAX_FAILURES - 1):
        assert (await api.gql(LOGIN, wrong)).codes == ["INVALID_CREDENTIALS"]

    await outage.proxy.stop()
    # Each of these would have been the failure that fills the window.
    for _ in range(MAX_FAILURES * 2):
        assert (await api.gql(LOGIN, right)).codes == ["SERVICE_UNAVAILABLE"]
    await outage.proxy.start()

    # Wrong passwords still count, from where they were: the window fills at its number, and
    # the lockout is the first of the day (one window long), not a longer one.
    assert (await api.gql(LOGIN, wrong)).codes == ["INVALID_CREDENTIALS"]
    locked = await api.gql(LOGIN, right)
    assert locked.codes == ["RATE_LIMITED"]
    assert 0 < locked.errors[0]["extensions"]["retryAfter"] <= api.settings.login_failure_window


async def lose_a_rotation(outage: Outage) -> tuple[str, str]:
    """A refresh whose rotation commits while its answer is lost (the proxy left deaf): the
    token it presented, and its session's id."""
    api = outage.api
    await api.create_user()
    login = await api.login()
    # One rotation first: asyncpg prepares a statement the first time, and waits for that
    # answer before it sends the statement itself.
    warm = await api.gql(REFRESH, {"t": login["refreshToken"]})
    token: str = warm.data["refresh"]["refreshToken"]
    outage.proxy.deafen()
    assert (await api.gql(REFRESH, {"t": token})).codes == ["SERVICE_UNAVAILABLE"]
    return token, login["session"]["id"]


async def test_a_refresh_whose_answer_was_lost_is_not_theft_when_retried(
    outage: Outage,
) -> None:
    # The rotation commits, its answer is lost, the client hears SERVICE_UNAVAILABLE and
    # retries with its token, as the docs say. By then that token was the previous one: after
    # the grace window, reuse, and the session was revoked for an outage.
    api = outage.api
    token, session_id = await lose_a_rotation(outage)
    await outage.proxy.stop()
    # The client retries during the outage: that fails too, and attempts a rotation of its
    # own, which must not make the first one forgotten.
    during = await api.gql(REFRESH, {"t": token})
    assert during.codes == ["SERVICE_UNAVAILABLE"]
    await outage.proxy.start()
    row = await SessionRow.get(id=session_id)
    assert str(row.previous_token_id) == unverified_claims(token)["jti"]  # the first did commit

    api.clock.advance(api.settings.refresh_reuse_grace + 60)
    retried = await api.gql(REFRESH, {"t": token})
    assert not retried.errors, retried.errors
    # The pair the lost answer carried: nobody had its token.
    handed = retried.data["refresh"]["refreshToken"]
    assert unverified_claims(handed)["jti"] == str(row.current_token_id)
    assert await AuditEvent.filter(kind="refresh_reuse_detected").count() == 0

    # Used up by that answer: a copy of the token replayed after the grace window is reuse.
    api.clock.advance(api.settings.refresh_reuse_grace + 1)
    replayed = await api.gql(REFRESH, {"t": token})
    assert replayed.codes == ["REFRESH_TOKEN_REUSED"]


async def test_a_lost_rotation_retried_inside_the_grace_window_is_used_up_too(
    outage: Outage,
) -> None:
    # The client's quick retry went through the grace window's branch, which left the lost
    # rotation remembered: a copy of the token replayed after the window got the pair.
    api = outage.api
    token, _ = await lose_a_rotation(outage)
    await outage.proxy.stop()
    await outage.proxy.start()

    api.clock.advance(1)
    assert not (await api.gql(REFRESH, {"t": token})).errors  # the client's retry
    api.clock.advance(api.settings.refresh_reuse_grace + 1)
    assert (await api.gql(REFRESH, {"t": token})).codes == ["REFRESH_TOKEN_REUSED"]


async def test_a_stalled_network_answers_every_waiting_request_within_its_bounds(
    outage: Outage,
) -> None:
    # A network that swallows packets: statements wait for their command timeout (2 s here)
    # and new connections for their connect timeout (1 s). Requests queued for a connection
    # waited without a bound of their own, one after another: 30 checks answered in waves
    # of three, the last after 45 s with the default timeouts.
    api = outage.api
    await api.create_user()
    tokens = [(await api.login())["accessToken"] for _ in range(20)]
    await outage.proxy.freeze()

    async def timed(token: str) -> tuple[float, list[str]]:
        started = time.monotonic()
        result = await api.gql(ME, token=token)
        return time.monotonic() - started, result.codes

    answers = await asyncio.gather(*(timed(token) for token in tokens))
    await outage.proxy.thaw()
    assert {tuple(codes) for _, codes in answers} == {("SERVICE_UNAVAILABLE",)}
    # Each waits for a connection (1 s) at most, then for its statement (2 s) at most.
    slowest = max(elapsed for elapsed, _ in answers)
    assert slowest < 1 + 2 + 1, str(sorted(round(elapsed, 1) for elapsed, _ in answers))


async def test_shutdown_on_a_stalled_network_is_bounded(
    pg_database: str | None, clock: FakeClock
) -> None:
    # With statements stuck on a network that swallows packets, closing the pool waited for
    # each one's cancellation: a SIGTERM took 16 s where uvicorn gives requests 10.
    require_service("PostgreSQL", pg_database is not None)
    assert pg_database is not None
    await empty_pg(pg_database)
    proxy = TcpProxy(PG_HOST, PG_PORT)
    await proxy.start()
    # Statements may wait 30 s here: only the close's own bound can end this test in time.
    settings = make_settings(
        pg_url(pg_database, port=proxy.port) + "?command_timeout=30", revocation_cache_ttl=0
    )
    app = create_app(settings, clock)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE_URL
        ) as client:
            api = Harness(app, client, settings, clock)
            await api.create_user()
            tokens = [(await api.login())["accessToken"] for _ in range(4)]
            # Each check on a held connection of its own, opened now: the frozen network gets
            # statements only, no connection attempt.
            await asyncio.gather(*(api.gql(ME, token=token) for token in tokens))
            await proxy.freeze()
            stuck = [asyncio.create_task(api.gql(ME, token=token)) for token in tokens]
            await asyncio.sleep(0.5)
            started = time.monotonic()
            await lifespan.__aexit__(None, None, None)
            closed_in = time.monotonic() - started
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
    finally:
        await proxy.stop()
    assert closed_in < CLOSE_WAIT + 1.5, closed_in


def unverified_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


async def test_a_database_dropped_under_the_service_is_unavailable(clock: FakeClock) -> None:
    # What /readyz already said (503): the requests answered INTERNAL_SERVER_ERROR, since
    # asyncpg's "database does not exist" was not taken for the database being unreachable.
    require_service("PostgreSQL", port_open(PG_HOST, PG_PORT))
    name = f"keyturn_test_{uuid.uuid4().hex[:10]}"
    await pg_admin(f'CREATE DATABASE "{name}"')
    try:
        url = pg_url(name)
        await migrate(url)
        settings = make_settings(url, revocation_cache_ttl=0)
        app = create_app(settings, clock)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client,
        ):
            api = Harness(app, client, settings, clock)
            await api.create_user()
            login = await api.login()
            await pg_admin(f'DROP DATABASE "{name}" WITH (FORCE)')
            variables = {"email": "user@example.com", "password": PASSWORD, "d": "BODY"}
            for _ in range(3):  # the first may meet a connection the drop has just ended
                me = await api.gql(ME, token=login["accessToken"])
                again = await api.gql(LOGIN, variables)
            assert me.codes == ["SERVICE_UNAVAILABLE"]
            assert again.codes == ["SERVICE_UNAVAILABLE"]
            assert (await client.get("/readyz")).status_code == 503
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
