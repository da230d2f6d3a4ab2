"""With the database unreachable every operation answers SERVICE_UNAVAILABLE and nothing is lost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from api.app import create_app
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
    pg_url,
    require_service,
)
from tests.tcpproxy import TcpProxy

ME = "{ me { id } }"
REFRESH = "mutation ($t: String) { refresh(refreshToken: $t) { refreshToken } }"


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
    settings = make_settings(pg_url(pg_database, port=proxy.port), revocation_cache_ttl=0)
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
