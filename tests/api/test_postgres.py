"""Keyturn's asyncpg connections go back to the pool without a reset query (api/postgres.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from tortoise import Tortoise

from api.db import connection, tortoise_config
from api.postgres import PooledConnection
from tests.conftest import pg_url, require_service


@pytest.fixture
async def pg(pg_database: str | None) -> AsyncIterator[str]:
    require_service("PostgreSQL", pg_database is not None)
    assert pg_database is not None
    url = pg_url(pg_database)
    await Tortoise.init(config=tortoise_config(url))
    await connection(url).execute_query("SELECT 1")  # the pool opens with the first query
    try:
        yield url
    finally:
        await Tortoise.close_connections()


async def _sent_around_a_query(pool: asyncpg.Pool) -> list[str]:
    """The statements a connection runs for one query and its return to the pool."""
    sent: list[str] = []

    def log(record: asyncpg.connection.LoggedQuery) -> None:
        sent.append(record.query)

    async with pool.acquire() as proxy:
        raw = proxy._con
        raw.add_query_logger(log)
        await proxy.fetchval("SELECT 1")
    # Given back: whatever the pool ran on release is in the log too.
    raw.remove_query_logger(log)
    return sent


async def test_a_connection_goes_back_to_the_pool_without_a_query(pg: str) -> None:
    pool = connection(pg)._pool  # type: ignore[attr-defined]
    async with pool.acquire() as proxy:
        assert isinstance(proxy._con, PooledConnection)
    assert await _sent_around_a_query(pool) == ["SELECT 1"]


async def test_asyncpgs_own_connections_would_send_a_reset_each_time(pg: str) -> None:
    # The contrast that makes the test above mean something: the stock class resets.
    config = tortoise_config(pg)["connections"]["postgres"]["credentials"]
    pool = await asyncpg.create_pool(
        host=config["host"],
        port=config["port"],
        user=config["user"],
        database=config["database"],
        min_size=1,
        max_size=1,
    )
    try:
        sent = await _sent_around_a_query(pool)
    finally:
        await pool.close()
    assert sent[0] == "SELECT 1"
    assert any("RESET ALL" in statement for statement in sent[1:]), sent


async def test_a_transaction_left_open_is_still_rolled_back_on_release(pg: str) -> None:
    pool = connection(pg)._pool  # type: ignore[attr-defined]
    async with pool.acquire() as proxy:
        await proxy.execute("BEGIN")
        await proxy.execute("CREATE TEMP TABLE left_open (id int)")
        pid = await proxy.fetchval("SELECT pg_backend_pid()")
    async with pool.acquire() as proxy:
        assert await proxy.fetchval("SELECT pg_backend_pid()") == pid  # the same connection
        assert not proxy._con.is_in_transaction()
        assert await proxy.fetchval("SELECT to_regclass('pg_temp.left_open')") is None
