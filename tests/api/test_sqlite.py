"""Keyturn's SQLite transactions: several processes share one file, and none meets a lock error.

Each case runs on its own migrated copy of the template, with real aiosqlite connections; the
concurrency cases use separate OS processes, as `keyturn serve --workers 2` does.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
from tortoise import Tortoise
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.transactions import in_transaction

import api.sqlite
from api.db import connection, is_unavailable, tortoise_config
from api.sqlite import MAX_BATCH, ImmediateSqliteClient

PROCESSES = 3
ROUNDS = 40


@pytest.fixture
def sqlite_file(tmp_path: Path, sqlite_template: Path) -> Path:
    path = tmp_path / "keyturn.sqlite3"
    shutil.copyfile(sqlite_template, path)
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)")
        db.execute("INSERT INTO counter VALUES (1, 0)")
        db.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)")
    return path


@pytest.fixture
async def orm(sqlite_file: Path) -> AsyncIterator[str]:
    url = f"sqlite://{sqlite_file}?busy_timeout=200"
    await Tortoise.init(config=tortoise_config(url))
    try:
        yield url
    finally:
        await Tortoise.close_connections()


async def _read_then_write() -> None:
    """Refresh's shape: read the row, then a conditional UPDATE decided by what was read, then
    an INSERT. The pause keeps the read open while the other processes reach theirs."""
    async with in_transaction("sqlite") as tx:
        _, rows = await tx.execute_query("SELECT value FROM counter WHERE id = 1")
        seen = rows[0]["value"]
        await asyncio.sleep(0.002)
        updated, _ = await tx.execute_query(
            "UPDATE counter SET value = ? WHERE id = 1 AND value = ?", [seen + 1, seen]
        )
        assert updated == 1, "another transaction wrote between this one's read and write"
        await tx.execute_insert("INSERT INTO ledger (value) VALUES (?)", [seen + 1])


async def _hammer(url: str, start: Barrier) -> list[str]:
    await Tortoise.init(config=tortoise_config(url))
    failures: list[str] = []
    try:
        start.wait()
        for _ in range(ROUNDS):
            try:
                await _read_then_write()
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
    finally:
        await Tortoise.close_connections()
    return failures


def _worker(url: str, start: Barrier, results: Queue[list[str]]) -> None:
    results.put(asyncio.run(_hammer(url, start)))


def test_processes_sharing_the_file_never_see_database_is_locked(sqlite_file: Path) -> None:
    url = f"sqlite://{sqlite_file}"
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    results: Queue[list[str]] = context.Queue()
    workers = [
        context.Process(target=_worker, args=(url, start, results)) for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    try:
        failures = [failure for _ in workers for failure in results.get(timeout=60)]
    finally:
        for worker in workers:
            worker.join(timeout=10)
    assert failures == []
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES
    with closing(sqlite3.connect(sqlite_file)) as db:
        assert db.execute("SELECT value FROM counter").fetchone() == (PROCESSES * ROUNDS,)
        assert db.execute("SELECT count(*) FROM ledger").fetchone() == (PROCESSES * ROUNDS,)


async def test_the_engine_is_keyturns_and_takes_the_write_lock_at_begin(
    orm: str, sqlite_file: Path
) -> None:
    assert isinstance(connection(orm), ImmediateSqliteClient)
    async with in_transaction("sqlite"):
        # No statement has run yet, and another connection already cannot write.
        other = sqlite3.connect(sqlite_file, timeout=0)
        try:
            with pytest.raises(sqlite3.OperationalError, match="database is locked"):
                other.execute("BEGIN IMMEDIATE")
        finally:
            other.close()


async def _failing_nested_update() -> None:
    async with in_transaction("sqlite") as nested:
        await nested.execute_query("UPDATE counter SET value = 2 WHERE id = 1")
        raise RuntimeError("undo the inner change only")


async def test_a_nested_transaction_rolls_back_to_its_savepoint(orm: str) -> None:
    async with in_transaction("sqlite") as tx:
        await tx.execute_query("UPDATE counter SET value = 1 WHERE id = 1")
        with pytest.raises(RuntimeError):
            await _failing_nested_update()
        async with in_transaction("sqlite") as nested:
            await nested.execute_insert("INSERT INTO ledger (value) VALUES (?)", [1])
    _, rows = await connection(orm).execute_query("SELECT value FROM counter WHERE id = 1")
    assert rows[0]["value"] == 1
    _, rows = await connection(orm).execute_query("SELECT count(*) AS n FROM ledger")
    assert rows[0]["n"] == 1


async def _empty_transaction() -> None:
    async with in_transaction("sqlite"):
        pass


async def test_a_begin_that_times_out_is_unavailable_and_frees_the_connection(
    orm: str, sqlite_file: Path
) -> None:
    holder = sqlite3.connect(sqlite_file, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="database is locked") as failure:
            # A task of its own, as each request has.
            await asyncio.create_task(_empty_transaction())
        assert is_unavailable(failure.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # The failed BEGIN must not keep the connection's lock: the next transaction runs.
    async with asyncio.timeout(2), in_transaction("sqlite") as tx:
        await tx.execute_query("UPDATE counter SET value = 7 WHERE id = 1")
    _, rows = await connection(orm).execute_query("SELECT value FROM counter WHERE id = 1")
    assert rows[0]["value"] == 7


async def test_connections_get_the_page_cache_and_the_lock_wait(sqlite_file: Path) -> None:
    await Tortoise.init(config=tortoise_config(f"sqlite://{sqlite_file}"))
    try:
        conn = connection(f"sqlite://{sqlite_file}")
        _, cache = await conn.execute_query("PRAGMA cache_size")
        _, timeout = await conn.execute_query("PRAGMA busy_timeout")
        assert list(cache[0]) == [-65536]  # 64 MB, in KiB
        assert list(timeout[0]) == [5000]
    finally:
        await Tortoise.close_connections()


@pytest.fixture
def client(orm: str) -> ImmediateSqliteClient:
    """The connection Keyturn's engine made for the test's file."""
    made = connection(orm)
    assert isinstance(made, ImmediateSqliteClient)
    return made


def _counter_and_ledger(db: sqlite3.Connection, value: int) -> int:
    db.execute("UPDATE counter SET value = ? WHERE id = 1", [value])
    return int(db.execute("INSERT INTO ledger (value) VALUES (?)", [value]).lastrowid or 0)


async def _state(url: str) -> tuple[int, int]:
    _, counter = await connection(url).execute_query("SELECT value FROM counter WHERE id = 1")
    _, ledger = await connection(url).execute_query("SELECT COUNT(*) AS n FROM ledger")
    return counter[0]["value"], ledger[0]["n"]


async def test_a_transaction_in_one_trip_commits_what_it_did(
    orm: str, client: ImmediateSqliteClient
) -> None:
    row_id = await client.run_in_transaction(lambda db: _counter_and_ledger(db, 5))
    assert row_id == 1
    assert await _state(orm) == (5, 1)


def _half_then_fail(db: sqlite3.Connection) -> None:
    """Changes the counter and adds a row, then fails: it inserts ledger row 1 again (its own,
    in an empty ledger, or an earlier call's)."""
    _counter_and_ledger(db, 9)
    db.execute("INSERT INTO ledger (id, value) VALUES (1, 0)")


async def test_a_transaction_in_one_trip_that_fails_leaves_nothing(
    orm: str, client: ImmediateSqliteClient
) -> None:
    with pytest.raises(IntegrityError):
        await client.run_in_transaction(_half_then_fail)
    assert await _state(orm) == (0, 0)
    # The connection is free and out of any transaction: the next one commits.
    await client.run_in_transaction(lambda db: _counter_and_ledger(db, 3))
    assert await _state(orm) == (3, 1)


async def test_a_transaction_in_one_trip_waits_for_the_lock_and_then_is_unavailable(
    orm: str, client: ImmediateSqliteClient, sqlite_file: Path
) -> None:
    holder = sqlite3.connect(sqlite_file, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="database is locked") as failure:
            await client.run_in_transaction(lambda db: _counter_and_ledger(db, 1))
        assert is_unavailable(failure.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert await _state(orm) == (0, 0)


async def _leave_a_transaction_open(client: ImmediateSqliteClient) -> None:
    """What an interrupted transaction leaves: BEGIN and a write, never committed."""
    await client.execute_query("SELECT 1")  # the connection opens with its first statement
    raw = client._connection
    assert raw is not None
    await raw.execute("BEGIN IMMEDIATE")
    await raw.execute("UPDATE counter SET value = 99 WHERE id = 1")
    assert raw.in_transaction


async def test_a_transaction_left_open_is_rolled_back_by_the_next_one(
    orm: str, client: ImmediateSqliteClient
) -> None:
    await _leave_a_transaction_open(client)
    async with in_transaction("sqlite") as tx:
        await tx.execute_query("INSERT INTO ledger (value) VALUES (1)")
    assert await _state(orm) == (0, 1)  # the leftover write is gone, the new one is in


async def test_a_transaction_left_open_is_rolled_back_by_one_in_one_trip(
    orm: str, client: ImmediateSqliteClient
) -> None:
    await _leave_a_transaction_open(client)
    await client.run_in_transaction(lambda db: db.execute("INSERT INTO ledger (value) VALUES (1)"))
    assert await _state(orm) == (0, 1)


async def _thread_statements(client: ImmediateSqliteClient, ran: list[str]) -> None:
    await client._connection.set_trace_callback(ran.append)  # type: ignore[union-attr]


async def test_a_read_on_the_loop_answers_without_the_connections_thread(
    client: ImmediateSqliteClient,
) -> None:
    await client.execute_query("SELECT 1")  # the writer's connection is open
    through_thread: list[str] = []
    await _thread_statements(client, through_thread)
    rows = await client.read_on_loop("SELECT value FROM counter WHERE id = ?", [1])
    assert rows == [{"value": 0}]
    assert through_thread == []


async def test_a_read_on_the_loop_sees_commits_and_never_waits_for_the_writer(
    client: ImmediateSqliteClient, sqlite_file: Path
) -> None:
    read = "SELECT value FROM counter WHERE id = ?"
    await client.run_in_transaction(lambda db: _counter_and_ledger(db, 4))
    assert await client.read_on_loop(read, [1]) == [{"value": 4}]
    holder = sqlite3.connect(sqlite_file, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("UPDATE counter SET value = 99 WHERE id = 1")
        loop = asyncio.get_running_loop()
        started = loop.time()
        # The committed value, at once: the write lock is held and its change not committed.
        assert await client.read_on_loop(read, [1]) == [{"value": 4}]
        assert loop.time() - started < 0.1
        holder.execute("COMMIT")
        assert await client.read_on_loop(read, [1]) == [{"value": 99}]
    finally:
        holder.close()


async def test_a_read_on_the_loop_cannot_write(orm: str, client: ImmediateSqliteClient) -> None:
    with pytest.raises(OperationalError, match="readonly"):
        await client.read_on_loop("UPDATE counter SET value = 5 WHERE id = ?", [1])
    assert await _state(orm) == (0, 0)


async def test_a_busy_read_on_the_loop_goes_through_the_thread_instead(
    client: ImmediateSqliteClient, tmp_path: Path
) -> None:
    read = "SELECT value FROM counter WHERE id = ?"
    assert await client.read_on_loop(read, [1]) == [{"value": 0}]
    # SQLite seldom answers a WAL reader busy, and not on demand. A rollback-journal file under
    # an exclusive lock always does, so the loop's reader is pointed at one holding 42.
    other = tmp_path / "locked.sqlite3"
    with closing(sqlite3.connect(other)) as db, db:
        db.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)")
        db.execute("INSERT INTO counter VALUES (1, 42)")
    holder = sqlite3.connect(other, isolation_level=None)
    reader = sqlite3.connect(other, isolation_level=None)
    reader.row_factory = sqlite3.Row
    reader.execute("PRAGMA busy_timeout = 0")
    own_reader, client._reader = client._reader, reader
    try:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            reader.execute(read, [1]).fetchall()
        # Busy on the loop: answered through the connection's thread, from the real file.
        assert await client.read_on_loop(read, [1]) == [{"value": 0}]
    finally:
        client._reader = own_reader
        holder.close()
        reader.close()


def _loop_statements(client: ImmediateSqliteClient, ran: list[str]) -> None:
    writer = client._writer or client._open_writer()
    assert writer is not None
    writer.set_trace_callback(ran.append)


async def test_calls_that_arrive_together_share_one_transaction_on_the_loop(
    orm: str, client: ImmediateSqliteClient
) -> None:
    await client.execute_query("SELECT 1")  # the writer's connection is open
    on_loop: list[str] = []
    through_thread: list[str] = []
    _loop_statements(client, on_loop)
    await _thread_statements(client, through_thread)
    results = await asyncio.gather(
        *(client.run_in_transaction(lambda db, v=v: _counter_and_ledger(db, v)) for v in range(20))
    )
    assert results == list(range(1, 21))  # each caller gets its own work's result, in order
    assert on_loop.count("BEGIN IMMEDIATE") == 1
    assert on_loop.count("COMMIT") == 1
    assert through_thread == []  # aiosqlite's thread had nothing to do
    assert await _state(orm) == (19, 20)


async def test_no_more_than_max_batch_calls_share_a_transaction(
    orm: str, client: ImmediateSqliteClient
) -> None:
    on_loop: list[str] = []
    _loop_statements(client, on_loop)
    calls = MAX_BATCH + 6
    results = await asyncio.gather(
        *(client.run_in_transaction(lambda db: _counter_and_ledger(db, 1)) for _ in range(calls))
    )
    assert results == list(range(1, calls + 1))
    assert on_loop.count("BEGIN IMMEDIATE") == 2  # MAX_BATCH of them, then the other six
    assert await _state(orm) == (1, calls)


async def test_calls_wait_for_a_transaction_through_tortoise_and_then_commit(
    orm: str, client: ImmediateSqliteClient
) -> None:
    async with in_transaction("sqlite") as tx:
        await tx.execute_query("UPDATE counter SET value = 7 WHERE id = 1")
        # The write lock is taken: the loop's connection does not wait for it, the call goes
        # to aiosqlite's thread, which waits behind this transaction.
        call = asyncio.create_task(client.run_in_transaction(lambda db: _counter_and_ledger(db, 8)))
        await asyncio.sleep(0.05)
        assert not call.done()
    assert await asyncio.wait_for(call, 5) == 1
    assert await _state(orm) == (8, 1)


async def test_a_call_that_fails_in_a_shared_transaction_undoes_only_itself(
    orm: str, client: ImmediateSqliteClient
) -> None:
    first, failed, last = await asyncio.gather(
        client.run_in_transaction(lambda db: _counter_and_ledger(db, 1)),
        client.run_in_transaction(_half_then_fail),
        client.run_in_transaction(lambda db: _counter_and_ledger(db, 3)),
        return_exceptions=True,
    )
    assert (first, last) == (1, 2)
    assert isinstance(failed, IntegrityError)
    assert await _state(orm) == (3, 2)  # neither the failed call's update nor its row


async def test_a_call_whose_caller_gave_up_before_it_began_never_runs(
    orm: str, client: ImmediateSqliteClient
) -> None:
    # A call queued behind a running transaction, whose caller was cancelled meanwhile.
    gave_up: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    gave_up.cancel()
    client._pending.append((lambda db: _counter_and_ledger(db, 2), gave_up))
    assert await client.run_in_transaction(lambda db: _counter_and_ledger(db, 1)) == 1
    assert await _state(orm) == (1, 1)


@asynccontextmanager
async def _lock_held_elsewhere(
    client: ImmediateSqliteClient, sqlite_file: Path, ran: list[str]
) -> AsyncIterator[None]:
    """Another connection holds the write lock meanwhile; `ran` traces the statements that go
    through aiosqlite's thread."""
    await client.execute_query("SELECT 1")  # the writer's connection is open
    await _thread_statements(client, ran)
    holder = sqlite3.connect(sqlite_file, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def test_every_call_in_a_transaction_that_cannot_begin_hears_so(
    orm: str, client: ImmediateSqliteClient, sqlite_file: Path
) -> None:
    ran: list[str] = []
    async with _lock_held_elsewhere(client, sqlite_file, ran):
        failures = await asyncio.gather(
            *(client.run_in_transaction(lambda db: _counter_and_ledger(db, 1)) for _ in range(3)),
            return_exceptions=True,
        )
    assert all(isinstance(f, OperationalError) and is_unavailable(f) for f in failures), failures
    assert ran.count("BEGIN IMMEDIATE") == 1  # one wait for the lock, not one for each call
    assert await _state(orm) == (0, 0)
    assert await client.run_in_transaction(lambda db: _counter_and_ledger(db, 5)) == 1


async def test_closing_the_connection_commits_what_was_asked_first(
    orm: str, client: ImmediateSqliteClient, sqlite_file: Path
) -> None:
    await client.run_in_transaction(lambda db: None)  # the loop's writer and its thread exist
    commit_thread = client._committer_thread
    assert commit_thread is not None
    assert commit_thread._thread.is_alive()
    calls = [
        asyncio.create_task(client.run_in_transaction(lambda db, v=v: _counter_and_ledger(db, v)))
        for v in range(1, 6)
    ]
    await asyncio.sleep(0)  # the calls are queued; none has run
    await Tortoise.close_connections()
    assert await asyncio.gather(*calls) == [1, 2, 3, 4, 5]
    assert not commit_thread._thread.is_alive()  # the close ended it
    with closing(sqlite3.connect(sqlite_file)) as db:
        assert db.execute("SELECT value FROM counter").fetchone() == (5,)
        assert db.execute("SELECT COUNT(*) FROM ledger").fetchone() == (5,)


async def test_the_loops_write_connection_gets_the_urls_settings_and_never_waits(
    sqlite_file: Path,
) -> None:
    url = f"sqlite://{sqlite_file}?synchronous=NORMAL"
    await Tortoise.init(config=tortoise_config(url))
    try:
        client = connection(url)
        assert isinstance(client, ImmediateSqliteClient)
        writer = client._open_writer()
        assert writer is not None
        pragmas = ("synchronous", "cache_size", "foreign_keys", "busy_timeout", "journal_mode")
        got = {name: writer.execute(f"PRAGMA {name}").fetchone()[0] for name in pragmas}
        assert got == {
            "synchronous": 1,  # NORMAL, as the URL asked
            "cache_size": -65536,
            "foreign_keys": 1,
            "busy_timeout": 0,
            "journal_mode": "wal",
        }
    finally:
        await Tortoise.close_connections()


async def test_a_commit_that_fails_undoes_the_whole_batch_and_every_caller_hears(
    orm: str, client: ImmediateSqliteClient, sqlite_file: Path
) -> None:
    with closing(sqlite3.connect(sqlite_file)) as db, db:
        db.execute(
            "CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER "
            "REFERENCES counter (id) DEFERRABLE INITIALLY DEFERRED)"
        )

    def orphan(db: sqlite3.Connection) -> int:
        # A deferred foreign key is checked only when the transaction commits.
        db.execute("INSERT INTO child (parent) VALUES (42)")
        return _counter_and_ledger(db, 6)

    outcomes = await asyncio.gather(
        client.run_in_transaction(lambda db: _counter_and_ledger(db, 5)),
        client.run_in_transaction(orphan),
        return_exceptions=True,
    )
    assert all(isinstance(o, IntegrityError) for o in outcomes), outcomes
    assert await _state(orm) == (0, 0)
    _, children = await client.execute_query("SELECT COUNT(*) AS n FROM child")
    assert children[0]["n"] == 0
    # Nothing is left open: the next batch commits.
    assert await client.run_in_transaction(lambda db: _counter_and_ledger(db, 7)) == 1
    assert await _state(orm) == (7, 1)


async def test_callers_hear_how_a_commit_cut_short_by_a_cancel_ended(
    orm: str, client: ImmediateSqliteClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The committer is cancelled (the loop shutting down) while a commit runs in its thread.
    That commit cannot be stopped: its callers hear that it committed, not that it never ran.
    A call still queued behind it never ran, and hears so."""
    committing = threading.Event()
    commit = api.sqlite._commit_or_roll_back

    def slow_commit(db: sqlite3.Connection) -> None:
        committing.set()
        time.sleep(0.2)  # the real commit, a moment later: the cancel lands meanwhile
        commit(db)

    monkeypatch.setattr(api.sqlite, "_commit_or_roll_back", slow_commit)
    batch = [
        asyncio.create_task(client.run_in_transaction(lambda db, v=v: _counter_and_ledger(db, v)))
        for v in (1, 2, 3)
    ]
    assert await asyncio.to_thread(committing.wait, 5)
    queued = asyncio.create_task(client.run_in_transaction(lambda db: _counter_and_ledger(db, 9)))
    await asyncio.sleep(0)
    committer = client._committer
    assert committer is not None
    committer.cancel()

    outcomes = await asyncio.gather(*batch, queued, return_exceptions=True)

    assert outcomes[:3] == [1, 2, 3], outcomes
    assert isinstance(outcomes[3], OperationalError), outcomes
    assert await _state(orm) == (3, 3)
    with pytest.raises(asyncio.CancelledError):
        await committer
    assert await client.run_in_transaction(lambda db: _counter_and_ledger(db, 4)) == 4


async def test_callers_hear_how_a_transaction_on_the_thread_ended_when_cut_short(
    orm: str, client: ImmediateSqliteClient, sqlite_file: Path
) -> None:
    """The same cancel while the batch waits for the lock on aiosqlite's thread: it goes on to
    commit there once the lock is free, and its callers hear that."""
    ran: list[str] = []
    async with _lock_held_elsewhere(client, sqlite_file, ran):
        calls = [
            asyncio.create_task(
                client.run_in_transaction(lambda db, v=v: _counter_and_ledger(db, v))
            )
            for v in (1, 2)
        ]
        while "BEGIN IMMEDIATE" not in ran:  # noqa: ASYNC110 (traced from the thread)
            await asyncio.sleep(0.005)
        committer = client._committer
        assert committer is not None
        committer.cancel()
        await asyncio.sleep(0.01)

    assert await asyncio.gather(*calls, return_exceptions=True) == [1, 2]
    assert await _state(orm) == (2, 2)
    with pytest.raises(asyncio.CancelledError):
        await committer


def test_a_full_disk_or_a_read_only_file_is_the_database_unavailable(tmp_path: Path) -> None:
    # Each was INTERNAL_SERVER_ERROR with a traceback per request. Both errors are SQLite's
    # own: a file at its page limit (what a full disk answers too) and one opened read-only.
    db_file = tmp_path / "small.sqlite3"
    with closing(sqlite3.connect(db_file)) as db:
        db.execute("CREATE TABLE t (x BLOB)")
        db.execute("PRAGMA max_page_count = 3")
        with pytest.raises(sqlite3.OperationalError) as full:
            db.execute("INSERT INTO t VALUES (zeroblob(100000))")
    read_only_db = closing(sqlite3.connect(f"{db_file.as_uri()}?mode=ro", uri=True))
    with read_only_db as db, pytest.raises(sqlite3.OperationalError) as read_only:
        db.execute("INSERT INTO t VALUES (1)")
    for error in (full.value, read_only.value):
        assert is_unavailable(error), error
    assert not is_unavailable(sqlite3.OperationalError("no such table: t"))
