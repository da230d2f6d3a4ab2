"""The app's HTTP surface: health, readiness, the GraphQL endpoint and GraphiQL, and how the app
behaves while PostgreSQL is unreachable and once it is back."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.app import READY_TIMEOUT, create_app
from api.main import SWITCH_INTERVAL, YOUNG_OBJECTS
from tests.conftest import (
    BASE_URL,
    LOGIN,
    PASSWORD,
    PG_HOST,
    PG_PORT,
    AppFactory,
    FakeClock,
    Harness,
    empty_pg,
    make_settings,
    pg_url,
    require_service,
)
from tests.tcpproxy import TcpProxy

# Long enough for the app's own timeouts (connect, readiness) to answer first.
OUTAGE_ANSWER_WITHIN = 15


async def test_healthz_answers_while_the_process_is_up(api: Harness) -> None:
    response = await api.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_answers_200_when_the_database_answers(api: Harness) -> None:
    response = await api.client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


async def test_typename_query_answers_query(api: Harness) -> None:
    response = await api.client.post("/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_typename_query_works_over_get(api: Harness) -> None:
    response = await api.client.get("/graphql", params={"query": "{ __typename }"})
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_a_mutation_over_get_is_refused(api: Harness) -> None:
    response = await api.client.get(
        "/graphql",
        params={"query": 'mutation { logout(refreshToken: "x") }'},
        headers={"Accept": "application/json"},
    )
    assert response.status_code >= 400
    assert response.status_code < 500


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "HEAD"])
async def test_other_methods_are_refused_in_json_naming_the_allowed_ones(
    api: Harness, method: str
) -> None:
    # Starlette's own 405 was plain text, the one refusal a client's response.json() threw on.
    response = await api.client.request(method, "/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"  # RFC 9110: a 405 names what is allowed
    if method != "HEAD":  # a HEAD answer has no body
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize(
    "content_type", ["application/graphql", "text/plain", "application/x-www-form-urlencoded"]
)
async def test_an_unsupported_content_type_says_to_send_json(
    api: Harness, content_type: str
) -> None:
    response = await api.client.post(
        "/graphql", content=b"{ __typename }", headers={"Content-Type": content_type}
    )
    assert response.status_code == 400
    assert "application/json" in response.json()["errors"][0]["message"]


async def test_a_get_whose_variables_are_not_json_names_the_parameter(api: Harness) -> None:
    response = await api.client.get(
        "/graphql", params={"query": "{ __typename }", "variables": "notjson"}
    )
    assert response.status_code == 400
    assert "variables" in response.json()["errors"][0]["message"]  # not "request body"


async def test_a_persisted_query_hash_alone_is_refused_as_unsupported(api: Harness) -> None:
    apq = {"persistedQuery": {"version": 1, "sha256Hash": "ecf4edb46db40b5132295c0291d62fb6"}}
    response = await api.client.post("/graphql", json={"extensions": apq})
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"].startswith("PersistedQueryNotSupported")
    # With its text, the extension is ignored and the query runs.
    ran = await api.client.post("/graphql", json={"query": "{ __typename }", "extensions": apq})
    assert ran.json() == {"data": {"__typename": "Query"}}


async def test_graphiql_opens_in_a_browser_in_development(api: Harness) -> None:
    response = await api.client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


async def test_graphiql_is_off_in_production(app_factory: AppFactory) -> None:
    api = await app_factory(env="production")
    response = await api.client.get("/graphql", headers={"Accept": "text/html"})
    assert "graphiql" not in response.text.lower()
    assert response.status_code != 200


# An outage of PostgreSQL, made by cutting a TCP proxy between the app and the server
# (tests/tcpproxy.py).
@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(PG_HOST, PG_PORT)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


@pytest.fixture
async def proxied_api(
    pg_database: str | None, proxy: TcpProxy, clock: FakeClock
) -> AsyncIterator[Harness]:
    """The app on the session's migrated PostgreSQL database, reached through the proxy."""
    require_service("PostgreSQL", pg_database is not None)
    assert pg_database is not None
    await empty_pg(pg_database)
    settings = make_settings(pg_url(pg_database, port=proxy.port))
    app = create_app(settings, clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client,
    ):
        yield Harness(app, client, settings, clock)


async def login(api: Harness, email: str) -> httpx.Response:
    return await api.client.post(
        "/graphql",
        json={"query": LOGIN, "variables": {"email": email, "password": PASSWORD, "d": "BODY"}},
    )


async def readyz(api: Harness) -> httpx.Response:
    return await asyncio.wait_for(api.client.get("/readyz"), OUTAGE_ANSWER_WITHIN)


async def test_readyz_and_login_during_an_outage_and_after_it(
    proxied_api: Harness, proxy: TcpProxy
) -> None:
    api = proxied_api
    email = f"outage-{uuid.uuid4().hex[:8]}@example.com"
    await api.create_user(email)
    assert (await readyz(api)).status_code == 200
    assert not (await login(api, email)).json().get("errors")

    await proxy.stop()

    down = await readyz(api)
    assert down.status_code == 503
    assert down.json() == {"status": "unavailable", "reason": "database unreachable"}
    assert (await api.client.get("/healthz")).status_code == 200
    failed = await asyncio.wait_for(login(api, email), OUTAGE_ANSWER_WITHIN)
    assert failed.status_code < 500
    body = failed.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert "Traceback" not in failed.text
    assert "127.0.0.1" not in failed.text
    assert (await readyz(api)).status_code == 503, "still down: the second check must agree"

    await proxy.start()

    up = await readyz(api)
    assert up.status_code == 200, up.text
    assert up.json()["status"] == "ready"
    recovered = await login(api, email)
    assert not recovered.json().get("errors"), recovered.text
    assert recovered.json()["data"]["login"]["user"]["email"] == email


async def test_readyz_answers_in_time_while_the_network_swallows_packets(
    proxied_api: Harness, proxy: TcpProxy
) -> None:
    assert (await readyz(proxied_api)).status_code == 200
    await proxy.freeze()
    try:
        for _ in range(2):
            started = time.monotonic()
            response = await readyz(proxied_api)
            assert response.status_code == 503
            assert time.monotonic() - started < READY_TIMEOUT + 1
    finally:
        await proxy.thaw()
    assert (await readyz(proxied_api)).status_code == 200


async def test_the_app_recovers_from_repeated_outages(
    proxied_api: Harness, proxy: TcpProxy
) -> None:
    for _ in range(3):
        assert (await readyz(proxied_api)).status_code == 200
        await proxy.stop()
        assert (await readyz(proxied_api)).status_code == 503
        await proxy.start()
    assert (await readyz(proxied_api)).status_code == 200


async def test_the_app_starts_while_the_database_is_down(
    pg_database: str | None, clock: FakeClock
) -> None:
    require_service("PostgreSQL", pg_database is not None)
    assert pg_database is not None
    proxy = TcpProxy(PG_HOST, PG_PORT)
    app = create_app(make_settings(pg_url(pg_database, port=proxy.port)), clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client,
    ):
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 503
        await proxy.start()
        try:
            assert (await client.get("/readyz")).status_code == 200
        finally:
            await proxy.stop()


def test_a_server_process_freezes_its_start_up_heap(tmp_path: Path) -> None:
    """What uvicorn's factory builds stays out of every later full collection, the youngest
    generation is collected only after many more objects than Python's default, and the process
    hands the interpreter to a waiting thread sooner than Python's default."""
    probe = (
        "import gc, sys; from api.main import app_from_env; "
        "before = gc.get_freeze_count(), sys.getswitchinterval(), gc.get_threshold(); "
        "app_from_env(); "
        "print(*before[:2], gc.get_freeze_count(), sys.getswitchinterval()); "
        "print(*before[2], *gc.get_threshold())"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")},
        "KEYTURN_DATABASE_URL": f"sqlite://{tmp_path / 'keyturn.sqlite3'}",
    }
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    heap, thresholds = done.stdout.splitlines()
    frozen_before, switch_before, frozen_after, switch_after = map(float, heap.split())
    assert frozen_before == 0
    assert frozen_after > 50_000  # the modules, the schema and the app: tens of thousands
    assert switch_before == 0.005
    assert switch_after == pytest.approx(SWITCH_INTERVAL)  # kept in whole microseconds
    assert switch_after < 0.001
    assert [int(n) for n in thresholds.split()] == [700, 10, 10, YOUNG_OBJECTS, 10, 10]
