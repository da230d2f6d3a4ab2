"""Fixtures: every test runs on a fresh, migrated database, once on SQLite and once on PostgreSQL.

The PostgreSQL database is created for this run (`keyturn_test_<random>`), migrated once, emptied
before each test and dropped at the end. SQLite tests copy a migrated template file. When
`CI=true`, an unreachable PostgreSQL fails the run instead of skipping its tests.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from api import accounts
from api.app import create_app
from api.migrations import migrate
from api.runtime import Keyturn
from api.settings import Settings
from models import Role
from models import User as UserRow

PG_HOST = os.environ.get("KEYTURN_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("KEYTURN_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("KEYTURN_TEST_PG_USER", "postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"

ACCESS_SECRET = "test-access-secret-0123456789-abcdefghijklmnop"
REFRESH_SECRET = "test-refresh-secret-9876543210-zyxwvutsrqponm"
PASSWORD = "correct horse battery"
BASE_URL = "https://keyturn.test"
TABLES = ("audit_events", "sessions", "users")


def pg_url(database: str, scheme: str = "postgres", port: int = PG_PORT) -> str:
    return f"{scheme}://{PG_USER}@{PG_HOST}:{port}/{database}"


def require_service(name: str, reachable: bool) -> None:
    if reachable:
        return
    if IN_CI:
        pytest.fail(f"{name} is required when CI=true but cannot be reached")
    pytest.skip(f"{name} is not reachable")


REDIS_HOST = os.environ.get("KEYTURN_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("KEYTURN_TEST_REDIS_PORT", "6379"))
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


async def delete_redis_keys(pattern: str) -> None:
    """Deletes a test's keys from the shared Redis (others may be using it: never FLUSHDB)."""
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(pattern)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    asyncio.run(migrate(f"sqlite://{path}"))
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    if not port_open(PG_HOST, PG_PORT):
        yield None
        return
    name = f"keyturn_test_{uuid.uuid4().hex[:10]}"

    asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(migrate(pg_url(name)))
        yield name
    finally:
        asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def pg_admin(sql: str) -> None:
    """Run one statement on the server's `postgres` database (CREATE/DROP DATABASE)."""
    conn = await asyncpg.connect(pg_url("postgres", "postgresql"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def empty_pg(name: str) -> None:
    conn = await asyncpg.connect(pg_url(name, "postgresql"))
    try:
        await conn.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database_url(
    backend: str,
    tmp_path: Path,
    sqlite_template: Path,
    pg_database: str | None,
) -> str:
    if backend == "sqlite":
        path = tmp_path / "keyturn.sqlite3"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite://{path}"
    require_service("PostgreSQL", pg_database is not None)
    assert pg_database is not None
    await empty_pg(pg_database)
    return pg_url(pg_database)


@dataclass
class FakeClock:
    """An injectable clock that only moves when a test moves it."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "access_token_secret": ACCESS_SECRET,
        "refresh_token_secret": REFRESH_SECRET,
        "registration_open": True,
        **overrides,
    }
    return Settings(_env_file=None, **values)


class GraphQLResult(dict[str, Any]):
    """A GraphQL response body with the HTTP response kept beside it."""

    response: httpx.Response

    @property
    def data(self) -> Any:
        return self.get("data")

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self.get("errors") or [])

    @property
    def codes(self) -> list[str]:
        return [error.get("extensions", {}).get("code") for error in self.errors]


@dataclass
class Harness:
    app: Any
    client: httpx.AsyncClient
    settings: Settings
    clock: FakeClock

    @property
    def kt(self) -> Keyturn:
        kt: Keyturn = self.app.state.keyturn
        return kt

    async def gql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> GraphQLResult:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        response = await (client or self.client).post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=sent
        )
        assert response.status_code < 500, response.text
        result = GraphQLResult(response.json())
        result.response = response
        return result

    async def create_user(
        self, email: str = "user@example.com", password: str = PASSWORD, role: Role = Role.USER
    ) -> UserRow:
        return await accounts.create_user(
            self.kt.passwords, email, password, role, actor_id=None, via="test", clock=self.clock
        )

    async def login(
        self,
        email: str = "user@example.com",
        password: str = PASSWORD,
        delivery: str = "BODY",
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        result = await self.gql(
            LOGIN, {"email": email, "password": password, "d": delivery}, headers=headers
        )
        assert not result.errors, result.errors
        payload: dict[str, Any] = result.data["login"]
        return payload

    def other_client(self) -> httpx.AsyncClient:
        """A second browser: its own cookie jar, the same app."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=BASE_URL)


LOGIN = """
mutation ($email: String!, $password: String!, $d: RefreshTokenDelivery!) {
  login(input: {email: $email, password: $password, refreshTokenDelivery: $d}) {
    accessToken accessTokenExpiresAt refreshToken refreshTokenExpiresAt
    user { id email role tokenVersion }
    session { id status isCurrent ipAddress userAgent }
  }
}
"""

AppFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def app_factory(database_url: str, clock: FakeClock) -> AsyncIterator[AppFactory]:
    async with AsyncExitStack() as stack:

        async def make(**overrides: Any) -> Harness:
            settings = make_settings(database_url, **overrides)
            app = create_app(settings, clock)
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)
            )
            return Harness(app, client, settings, clock)

        yield make


@pytest.fixture
async def api(app_factory: AppFactory) -> Harness:
    return await app_factory()


@pytest.fixture
async def user(api: Harness) -> UserRow:
    return await api.create_user()


@pytest.fixture
async def admin(api: Harness) -> UserRow:
    return await api.create_user("admin@example.com", role=Role.ADMIN)
