"""Keyturn's asyncpg connections (api/postgres.py): back to the pool without a reset query, and a
few held out of it for the hot statements."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import pytest
from tortoise import Tortoise
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.transactions import in_transaction

from api.db import connection, is_unavailable, tortoise_config
from api.postgres import (
    MAX_GROUP,
    KeyturnAsyncpgClient,
    PooledConnection,
    _alive,
    _keeps_connection,
)
from models.statements import GroupedStatements, HeldConnections
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


# Held connections: the hot statements skip the pool (api/postgres.py, `fetch_held`).


def _client(url: str) -> KeyturnAsyncpgClient:
    client = connection(url)
    assert isinstance(client, KeyturnAsyncpgClient)
    return client


def _kept_out(client: KeyturnAsyncpgClient) -> int:
    """Connections out of the pool: the held ones, when no other statement is running."""
    pool = client._pool
    assert pool is not None
    return pool.get_size() - pool.get_idle_size()


async def _pid(client: KeyturnAsyncpgClient, sleep: float = 0) -> int:
    rows = await client.fetch_held("SELECT pg_backend_pid() AS pid, pg_sleep($1)", [sleep])
    pid: int = rows[0]["pid"]
    return pid


async def test_postgres_urls_get_keyturns_client_holding_four_connections_at_most(pg: str) -> None:
    client = _client(pg)
    assert client.may_hold == 4  # of the default pool of ten
    assert isinstance(client, HeldConnections)
    async with in_transaction(client.connection_name) as transaction:
        # A transaction's statements run on its own connection, never on a held one.
        assert not isinstance(transaction, HeldConnections)


@pytest.mark.parametrize(("maxsize", "held"), [(1, 0), (3, 1), (6, 3)])
async def test_a_small_pool_lends_at_most_half_of_its_connections(
    pg_database: str | None, maxsize: int, held: int
) -> None:
    require_service("PostgreSQL", pg_database is not None)
    assert pg_database is not None
    url = pg_url(pg_database) + f"?maxsize={maxsize}"
    await Tortoise.init(config=tortoise_config(url))
    try:
        client = _client(url)
        assert client.may_hold == held
        pids = await asyncio.gather(*(_pid(client, 0.2) for _ in range(maxsize + 1)))
        assert _kept_out(client) == held
        if held == 0:
            # Every statement went through the pool, which queued the one too many.
            assert len(set(pids)) == maxsize
        else:
            assert len(set(pids)) == held
    finally:
        await Tortoise.close_connections()


async def test_statements_run_on_a_held_connection_kept_out_of_the_pool(pg: str) -> None:
    client = _client(pg)
    pool = client._pool
    assert pool is not None
    first = await _pid(client)
    assert await _pid(client) == first
    # Out of the pool: tortoise's own queries never get it.
    async with pool.acquire() as proxy:
        assert await proxy.fetchval("SELECT pg_backend_pid()") != first


async def test_when_every_held_connection_is_busy_a_statement_waits_for_one(pg: str) -> None:
    client = _client(pg)
    pids = await asyncio.gather(*(_pid(client, 0.2) for _ in range(6)))
    assert len(set(pids)) == 4  # the last two ran on held connections too, once free
    assert _kept_out(client) == 4
    assert len(client._idle) == 4
    pool = client._pool
    assert pool is not None
    async with pool.acquire() as proxy:
        assert await proxy.fetchval("SELECT pg_backend_pid()") not in pids


async def test_a_refused_statement_raises_tortoises_error_and_keeps_the_connection(
    pg: str,
) -> None:
    client = _client(pg)
    pid = await _pid(client)
    with pytest.raises(OperationalError):
        await client.fetch_held("SELECT * FROM no_such_table", [])
    with pytest.raises(OperationalError):
        await client.fetch_held("SELECT 1 / $1::int", [0])  # a DataError, as tortoise says
    await client.fetch_held("CREATE TEMP TABLE once (id int PRIMARY KEY)", [])
    await client.fetch_held("INSERT INTO once VALUES (1)", [])
    with pytest.raises(IntegrityError):
        await client.fetch_held("INSERT INTO once VALUES (1)", [])
    assert await _pid(client) == pid


async def test_an_error_tortoise_does_not_translate_passes_through_unchanged(pg: str) -> None:
    client = _client(pg)
    pid = await _pid(client)
    await client.fetch_held(
        "CREATE FUNCTION pg_temp.refuse() RETURNS int LANGUAGE plpgsql "
        "AS $$ BEGIN RAISE EXCEPTION 'refused here'; END $$",
        [],
    )
    with pytest.raises(asyncpg.RaiseError, match="refused here"):
        await client.fetch_held("SELECT pg_temp.refuse()", [])
    assert await _pid(client) == pid


async def test_a_statement_cancelled_midway_gives_its_connection_back_to_the_pool(
    pg: str,
) -> None:
    client = _client(pg)
    pool = client._pool
    assert pool is not None
    pid = await _pid(client)
    task = asyncio.create_task(_pid(client, 30))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Given back in the background: the cancelled caller does not wait for it.
    if client._releasing:
        await asyncio.wait(set(client._releasing))
    assert _kept_out(client) == 0
    assert client._idle == []
    # The pool waited for the server to cancel it: the connection is whole again, and the
    # next statement holds a connection again.
    async with pool.acquire() as proxy:
        assert await proxy.fetchval("SELECT 1") == 1
    await _pid(client)
    assert _kept_out(client) == 1
    # Nothing is left running on the server.
    rows = await client.fetch_held(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1 AND state = 'active' "
        "AND pid <> pg_backend_pid()",
        [pid],
    )
    assert rows[0]["n"] == 0


async def test_a_held_connection_the_server_dropped_is_replaced(pg: str) -> None:
    client = _client(pg)
    pid = await _pid(client)
    (held,) = client._idle
    async with client.acquire_connection() as other:
        await other.fetch("SELECT pg_terminate_backend($1)", pid)
    async with asyncio.timeout(5):
        # Until the server's notice reaches the idle connection (asyncpg has no event for it).
        while _alive(held):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    # The next statement does not meet the dead connection: the pool gets it back and
    # replaces it.
    assert await _pid(client) != pid
    assert _kept_out(client) == 1


async def test_a_held_connection_dropped_mid_statement_goes_back_to_the_pool(pg: str) -> None:
    client = _client(pg)
    pid = await _pid(client)
    async with client.acquire_connection() as other:
        running = asyncio.create_task(_pid(client, 30))
        async with asyncio.timeout(5):
            while not await other.fetchval(  # noqa: ASYNC110 (the server's view, no event)
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", pid
            ):
                await asyncio.sleep(0.01)
        await other.fetch("SELECT pg_terminate_backend($1)", pid)
    # The statement fails as the database being unavailable, and its connection is not kept.
    with pytest.raises(asyncpg.ConnectionDoesNotExistError) as failed:
        await running
    assert is_unavailable(failed.value)
    assert _kept_out(client) == 0
    assert await _pid(client) != pid


async def test_backends_terminated_under_load_fail_only_as_the_database_unavailable(
    pg: str, pg_database: str
) -> None:
    # A connection whose backend was terminated can be used again before the socket's close
    # reaches it, and asyncpg then fails with InternalClientError ("cannot switch to state
    # 15; another operation (2) is in progress"), which was answered INTERNAL_SERVER_ERROR:
    # a few each time, on every path (held, pooled, in a transaction).
    client = _client(pg)
    await client.execute_query("CREATE TABLE counted (id int PRIMARY KEY, n int)")
    await client.execute_query("INSERT INTO counted VALUES (1, 0)")
    outcomes: Counter[str] = Counter()
    stop = asyncio.Event()

    async def one(path: int) -> None:
        try:
            if path == 0:
                async with in_transaction() as tx:
                    await tx.execute_query("UPDATE counted SET n = n + 1 WHERE id = 1")
            elif path == 1:
                await client.fetch_held("SELECT n FROM counted WHERE id = $1", [1])
            else:
                await client.execute_query("SELECT n FROM counted WHERE id = 1")
            outcomes["ok"] += 1
        except Exception as exc:  # each kind of failure is what is counted
            kind = "unavailable" if is_unavailable(exc) else f"{type(exc).__name__}: {exc}"
            outcomes[kind] += 1

    async def requests(path: int) -> None:
        while not stop.is_set():
            await asyncio.create_task(one(path))  # a task each, as requests are

    load = [asyncio.create_task(requests(i % 3)) for i in range(12)]
    killer = await asyncpg.connect(pg_url("postgres").replace("postgres://", "postgresql://"))
    try:
        for _ in range(12):
            await asyncio.sleep(0.2)
            await killer.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                pg_database,
            )
        await asyncio.sleep(0.25)
    finally:
        stop.set()
        await asyncio.gather(*load)
        await killer.close()
    assert outcomes["unavailable"] > 0, outcomes  # the terminations were felt
    assert set(outcomes) == {"ok", "unavailable"}, outcomes
    # And it recovered on its own: every path works again.
    before = outcomes["ok"]
    await asyncio.gather(*(one(path) for path in range(3)))
    assert outcomes["ok"] == before + 3, outcomes
    # With every connection the pool has to lend: a transaction whose BEGIN met a terminated
    # backend kept its connection out of the pool for good (tortoise's own transaction
    # context), a few each time, until none was left.
    pool = client._pool
    assert pool is not None
    lendable = int(client.pool_maxsize) - len(client._idle)
    async with asyncio.timeout(5):
        taken = await asyncio.gather(*(pool.acquire() for _ in range(lendable)))
    for proxy in taken:
        await pool.release(proxy)


async def test_a_statement_waits_for_a_slot_and_then_the_pool_no_longer_than_the_timeout(
    pg_database: str | None,
) -> None:
    # A statement that waited for a slot and then found no held connection free waits for the
    # pool too. Each wait had the URL's timeout of its own: SERVICE_UNAVAILABLE came after up
    # to twice as long.
    require_service("PostgreSQL", pg_database is not None)
    assert pg_database is not None
    limit = 1.0
    url = pg_url(pg_database) + f"?maxsize=4&timeout={limit}"  # two slots
    await Tortoise.init(config=tortoise_config(url))
    client = _client(url)
    killer = await asyncpg.connect(pg_url(pg_database, scheme="postgresql"))
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[int]] = []
    taken: list[asyncpg.pool.PoolConnectionProxy] = []
    try:
        # The first slot's statement sleeps on held connection A...
        tasks.append(asyncio.create_task(_pid(client, 30)))
        async with asyncio.timeout(5):
            while not (  # noqa: ASYNC110 (the server's view, no event)
                pid := await killer.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE state = 'active'"
                    " AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()"
                )
            ):
                await asyncio.sleep(0.01)
        # ... the rest of the pool is out, so the second slot's statement waits for it...
        pool = client._pool
        assert pool is not None
        taken = [await pool.acquire() for _ in range(3)]
        tasks.append(asyncio.create_task(_pid(client)))
        await asyncio.sleep(0)
        assert client._slots is not None
        assert client._slots.locked()
        # ... and a third waits for a slot, which A's end frees halfway through its wait. A
        # goes back to the pool, which lends it (made anew) to the second: the third, in the
        # freed slot, finds no held connection free and waits for the pool in turn.
        started = loop.time()
        tasks.append(asyncio.create_task(_pid(client)))
        await asyncio.sleep(limit / 2)
        await killer.execute("SELECT pg_terminate_backend($1)", pid)
        first, second, third = await asyncio.gather(*tasks, return_exceptions=True)
        waited = loop.time() - started
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for proxy in taken:
            await pool.release(proxy)
        await killer.close()
        await Tortoise.close_connections()
    assert isinstance(first, asyncpg.ConnectionDoesNotExistError)
    assert isinstance(second, int)
    assert second != pid
    assert isinstance(third, TimeoutError)
    assert is_unavailable(third)
    assert limit * 0.9 < waited < limit * 1.25, waited  # one limit in all, not 1.5


async def _opened_here(pg_database: str | None) -> KeyturnAsyncpgClient:
    """The ORM opened by the test itself, for a test of closing it (the `pg` fixture would)."""
    require_service("PostgreSQL", pg_database is not None)
    assert pg_database is not None
    url = pg_url(pg_database)
    await Tortoise.init(config=tortoise_config(url))
    return _client(url)


async def test_close_gives_the_held_connections_back_at_once(pg_database: str | None) -> None:
    client = await _opened_here(pg_database)
    await asyncio.gather(_pid(client, 0.1), _pid(client, 0.1))
    assert _kept_out(client) == 2
    # asyncpg's close waits for every connection out of the pool; tortoise gives up after
    # ten seconds and terminates them. Held ones go back first, so close does not wait.
    await asyncio.wait_for(Tortoise.close_connections(), 5)
    assert client._idle == []
    assert client._pool is None


async def test_close_lets_a_busy_held_connection_finish_and_takes_it_back(
    pg_database: str | None,
) -> None:
    require_service("PostgreSQL", pg_database is not None)
    assert pg_database is not None
    url = pg_url(pg_database)
    await Tortoise.init(config=tortoise_config(url))
    client = _client(url)
    busy = asyncio.create_task(_pid(client, 0.5))
    await asyncio.sleep(0.2)  # the statement is running on a held connection
    # The statement finishes while close waits for its connection, which then goes back to
    # the pool instead of staying held (were it kept, close would wait ten seconds).
    await asyncio.wait_for(Tortoise.close_connections(), 5)
    assert await busy > 0
    assert client._idle == []


@pytest.mark.parametrize(
    ("error", "kept"),
    [
        (asyncpg.UniqueViolationError("refused"), True),  # 23505: the statement's own fault
        (asyncpg.PostgresSyntaxError("refused"), True),  # 42601
        (asyncpg.AdminShutdownError("going away"), False),  # 57P01
        (asyncpg.ConnectionFailureError("gone"), False),  # 08006
        (asyncpg.TooManyConnectionsError("full"), False),  # 53300
        (asyncpg.InternalServerError("broken"), False),  # XX000
        (asyncpg.PostgresError("no SQLSTATE"), False),  # unknown: not trusted
    ],
)
def test_a_held_connection_is_kept_only_after_a_statements_own_error(
    error: asyncpg.PostgresError, kept: bool
) -> None:
    # A real server always sends an SQLSTATE; the last case is the defensive default, which
    # no real server can be made to produce.
    assert _keeps_connection(error) is kept


# Grouped statements: concurrent rotations share a round trip and a commit
# (api/postgres.py, `fetch_grouped`).

NUMBERED = "SELECT $1::int AS n, txid_current() AS tx, pg_backend_pid() AS pid"
# One row per execution, as a grouped statement must give: the row it wrote, or NULLs.
ADD = (
    "WITH added AS (INSERT INTO grouped VALUES ($1) RETURNING 100 / id AS share) "
    "SELECT added.* FROM (SELECT 1) AS one LEFT JOIN added ON TRUE"
)

COUNT = "SELECT count(*) AS n FROM grouped"


async def _grouped_table(client: KeyturnAsyncpgClient) -> None:
    # Not a temporary table: the executions run on whichever held connection is free.
    await client.fetch_held("DROP TABLE IF EXISTS grouped", [])
    await client.fetch_held("CREATE TABLE grouped (id int PRIMARY KEY)", [])


async def _grouped_ids(client: KeyturnAsyncpgClient) -> list[int]:
    rows = await client.fetch_held("SELECT id FROM grouped ORDER BY id", [])
    return [row["id"] for row in rows]


async def test_concurrent_executions_go_out_together_in_one_transaction(pg: str) -> None:
    client = _client(pg)
    assert isinstance(client, GroupedStatements)
    alone = await client.fetch_grouped(NUMBERED, [7])
    assert alone["n"] == 7
    rows = await asyncio.gather(*(client.fetch_grouped(NUMBERED, [n]) for n in range(20)))
    # Each caller gets the row of its own execution, in one transaction and one round trip.
    assert [row["n"] for row in rows] == list(range(20))
    assert len({row["tx"] for row in rows}) == 1
    assert len({row["pid"] for row in rows}) == 1
    assert rows[0]["tx"] != alone["tx"]
    assert _kept_out(client) == 1  # on a held connection, back among them


async def test_a_grouped_execution_sees_the_writes_of_the_ones_before_it(pg: str) -> None:
    client = _client(pg)
    await _grouped_table(client)
    # A statement does not see its own insert; the count is what the executions before it in
    # the same transaction wrote. Two rotations of one token in a group rely on this.
    add_and_count = (
        "WITH added AS (INSERT INTO grouped VALUES ($1) RETURNING id) "
        "SELECT added.id, (SELECT count(*) FROM grouped) AS seen, txid_current() AS tx "
        "FROM added"
    )
    rows = await asyncio.gather(*(client.fetch_grouped(add_and_count, [n]) for n in (1, 2, 3)))
    assert [(row["id"], row["seen"]) for row in rows] == [(1, 0), (2, 1), (3, 2)]
    assert len({row["tx"] for row in rows}) == 1
    # A different statement waits for the next group: it sees the first one committed.
    first, counted = await asyncio.gather(
        client.fetch_grouped(ADD, [5]), client.fetch_grouped(COUNT, [])
    )
    assert first["share"] == 20
    assert counted["n"] == 4


async def test_a_group_holds_at_most_max_group_executions(pg: str) -> None:
    client = _client(pg)
    calls = MAX_GROUP + 6
    rows = await asyncio.gather(*(client.fetch_grouped(NUMBERED, [n]) for n in range(calls)))
    assert [row["n"] for row in rows] == list(range(calls))
    by_transaction = Counter(row["tx"] for row in rows)
    assert sorted(by_transaction.values()) == [6, MAX_GROUP]


async def test_a_refused_execution_fails_alone_and_the_others_are_written_once(pg: str) -> None:
    client = _client(pg)
    await _grouped_table(client)
    pid = await _pid(client)
    results = await asyncio.gather(
        *(client.fetch_grouped(ADD, [n]) for n in (1, 2, 0, 4)), return_exceptions=True
    )
    # 100 / 0: the server refused the group, which ran again one by one.
    assert isinstance(results[2], OperationalError)
    assert [row["share"] for row in results if not isinstance(row, Exception)] == [100, 50, 25]
    assert await _grouped_ids(client) == [1, 2, 4]
    # A duplicate key fails the same way, as tortoise's IntegrityError.
    results = await asyncio.gather(
        client.fetch_grouped(ADD, [8]), client.fetch_grouped(ADD, [1]), return_exceptions=True
    )
    assert isinstance(results[1], IntegrityError)
    assert await _grouped_ids(client) == [1, 2, 4, 8]
    assert await _pid(client) == pid  # refusals keep the connection


async def test_a_caller_that_gives_up_before_its_group_goes_out_is_left_out(pg: str) -> None:
    client = _client(pg)
    await _grouped_table(client)
    calls = [asyncio.create_task(client.fetch_grouped(ADD, [n])) for n in (1, 2, 3)]
    await asyncio.sleep(0)  # each call is waiting for its group, which has not gone out yet
    calls[1].cancel()
    done = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(done[1], asyncio.CancelledError)
    assert await _grouped_ids(client) == [1, 3]


async def test_a_group_whose_connection_is_lost_fails_every_caller(pg: str) -> None:
    client = _client(pg)
    pid = await _pid(client)
    sleeping = "SELECT $1::int AS n, pg_sleep(30) AS slept"
    async with client.acquire_connection() as other:
        group = asyncio.gather(
            *(client.fetch_grouped(sleeping, [n]) for n in range(3)), return_exceptions=True
        )
        async with asyncio.timeout(5):
            while not await other.fetchval(  # noqa: ASYNC110 (the server's view, no event)
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", pid
            ):
                await asyncio.sleep(0.01)
        await other.fetch("SELECT pg_terminate_backend($1)", pid)
        results = await asyncio.wait_for(group, 5)
    assert all(isinstance(result, asyncpg.ConnectionDoesNotExistError) for result in results)
    assert all(is_unavailable(result) for result in results)
    # The connection is not kept, and the next group runs on another.
    assert _kept_out(client) == 0
    row = await client.fetch_grouped(NUMBERED, [1])
    assert row["pid"] != pid


async def test_a_statement_giving_other_than_one_row_is_an_error(pg: str) -> None:
    client = _client(pg)
    with pytest.raises(OperationalError, match="0 rows"):
        await client.fetch_grouped("SELECT 1 AS n WHERE false", [])
    results = await asyncio.gather(
        client.fetch_grouped("SELECT generate_series(1, $1::int) AS n", [2]),
        client.fetch_grouped("SELECT generate_series(1, $1::int) AS n", [1]),
        return_exceptions=True,
    )
    assert all(isinstance(result, OperationalError) for result in results)


async def test_close_answers_the_groups_asked_for_before_it(pg_database: str | None) -> None:
    client = await _opened_here(pg_database)
    calls = [asyncio.create_task(client.fetch_grouped(NUMBERED, [n])) for n in range(5)]
    await asyncio.sleep(0)
    await asyncio.wait_for(Tortoise.close_connections(), 5)
    assert [call.result()["n"] for call in calls] == list(range(5))
    assert client._runner_tasks == set()
