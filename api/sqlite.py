"""Keyturn's tortoise engine for SQLite: every transaction takes the write lock when it begins.

tortoise opens transactions with a deferred `BEGIN`, which takes no lock until the first write.
When several processes share the file (`keyturn serve --workers 2`), a transaction that has read
and then writes while another process holds the write lock gets "database is locked" at once:
SQLite does not wait (busy_timeout) for a reader that wants to become a writer, since two such
readers would wait for each other. `BEGIN IMMEDIATE` asks for the write lock first, where
busy_timeout applies, so concurrent transactions queue instead of failing. Keyturn opens a
transaction only to change something (plain reads run outside one, and in WAL mode they never wait
for the write lock), so taking the lock up front costs little.

tortoise_config names this module as the engine of SQLite URLs; tortoise reads `client_class`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

from tortoise.backends.base.client import TransactionalDBClient, TransactionContext
from tortoise.backends.sqlite.client import (
    SqliteClient,
    SqliteTransactionContext,
    SqliteTransactionWrapper,
)
from tortoise.connection import get_connections
from tortoise.exceptions import IntegrityError, OperationalError

try:
    import fcntl
except ImportError:  # not POSIX: no lock file
    fcntl = None  # type: ignore[assignment]

T = TypeVar("T")


class ImmediateTransactionContext(SqliteTransactionContext):
    async def __aenter__(self) -> TransactionalDBClient:
        await self._trxlock.acquire()
        try:
            await self.ensure_connection()
            await self.connection.begin()
        except BaseException:
            # tortoise's context keeps the connection's lock when BEGIN fails, which a deferred
            # BEGIN never does but BEGIN IMMEDIATE can (busy_timeout passed): every later query
            # of this process would then wait for the lock for ever.
            self._trxlock.release()
            raise
        client: TransactionalDBClient = self.connection
        self.token = get_connections().set(self.connection_name, client)
        return client


class ImmediateTransactionWrapper(SqliteTransactionWrapper):
    async def begin(self) -> None:
        try:
            if self._connection.in_transaction:
                # Left open by an interrupted transaction: what it did is not ours to commit
                # (tortoise's own wrapper commits it, and does so with a round trip to the
                # connection's thread before every transaction).
                await self._connection.rollback()
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise OperationalError(exc) from exc


class ImmediateSqliteClient(SqliteClient):
    _reader: sqlite3.Connection | None = None
    _writer: sqlite3.Connection | None = None
    _committer_thread: _CommitThread | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: list[_Pending] = []  # run_in_transaction's calls not yet begun
        self._committer: asyncio.Task[None] | None = None

    _in_use: InUse | None = None

    async def create_connection(self, with_db: bool) -> None:
        if self._in_use is None and self.filename != ":memory:":
            # In a thread: during a migration the lock is the migration's, and this waits.
            self._in_use = await asyncio.to_thread(InUse, Path(self.filename))
        await super().create_connection(with_db)

    # Nested transactions keep tortoise's wrapper: they are savepoints and never BEGIN.
    def _in_transaction(self) -> TransactionContext:
        return ImmediateTransactionContext(ImmediateTransactionWrapper(self), self._lock)

    async def read_on_loop(self, sql: str, values: list[Any]) -> list[dict[str, Any]]:
        """A short read (a primary-key lookup) run on the event loop's own thread, on a
        read-only connection of its own; through the connection's thread when that cannot be.

        Every query through aiosqlite queues on one thread behind whatever runs there (a write
        transaction's statements, each commit's flush to disk) and needs the GIL back from a
        busy event loop several times on its way: under load the access check's lookup, about
        50 µs of SQLite's work, took tens of milliseconds. In WAL mode a reader never waits for
        the writer, so this connection is opened with no lock wait at all: in the rare case
        SQLite still answers busy (a checkpoint restarting the log), the read goes the usual
        way instead of blocking the loop. Not for reads inside a transaction, which must see
        that transaction's writes: those run on its own connection.
        """
        reader = self._reader or self._open_reader()
        if reader is not None:
            self.log.debug("%s: %s", sql, values)  # as tortoise logs every statement
            try:
                return [dict(row) for row in reader.execute(sql, values)]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise OperationalError(exc) from exc
        rows: list[dict[str, Any]] = await self.execute_query_dict(sql, values)
        return rows

    def _open_reader(self) -> sqlite3.Connection | None:
        cache_size = int(self.pragmas.get("cache_size", -2000))
        self._reader = self._own_connection(
            "busy_timeout = 0", "query_only = ON", f"cache_size = {cache_size}"
        )
        return self._reader

    def _own_connection(self, *pragmas: str) -> sqlite3.Connection | None:
        """A connection to the file besides tortoise's, for the event loop's thread; None for an
        in-memory database, where a second connection would open another, empty one."""
        if self.filename == ":memory:":
            return None
        try:
            # Not tied to the thread that opened it: an app's loop may move, and the loop's
            # write connection commits from a thread of its own (SQLite is built serialized).
            conn = sqlite3.connect(self.filename, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            for pragma in pragmas:
                conn.execute(f"PRAGMA {pragma}")
        except sqlite3.Error as exc:
            raise OperationalError(exc) from exc
        return conn

    async def close(self) -> None:
        if self._committer is not None:
            # What was asked for before the close is committed, and its callers answered.
            await asyncio.shield(self._committer)
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._writer is not None:
            assert self._committer_thread is not None
            self._committer_thread.stop()
            self._writer.close()
            self._writer, self._committer_thread = None, None
        await super().close()
        if self._in_use is not None:
            self._in_use.release()
            self._in_use = None

    async def run_in_transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `work` between `BEGIN IMMEDIATE` and `COMMIT`; an exception from it, or from
        the commit, undoes everything it did. `work` gets the connection to use and must use
        nothing else, nor touch the event loop.

        Calls that arrive while a transaction runs are committed together in the next one
        (group commit): one lock and one flush to disk for all of them. A call almost never
        fails, so they run straight on, with no savepoint each; when one does, the transaction
        is rolled back and each runs again alone, so that only the failed one is undone. Every
        caller hears back only once the transaction holding its work has committed.

        The statements run on the event loop's thread, on a write connection of this client's
        own that never waits for the lock, and only the commit, which waits for the disk, goes
        to a thread. A transaction through tortoise costs a trip to aiosqlite's thread per
        statement, and each trip waits for the GIL from a busy event loop: a batch of eight
        rotations took 6 to 11 ms there for 2 ms of SQLite's work. When the lock is taken (a
        transaction through tortoise, another worker process) or a call fails, the batch goes
        through aiosqlite's thread instead, which waits for the lock (busy_timeout).
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((work, future))
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_pending())
        return await future

    async def _commit_pending(self) -> None:
        batch: list[_Pending] = []
        try:
            while self._pending:
                # Work whose caller gave up before it began is dropped: it never ran.
                batch = [item for item in self._pending[:MAX_BATCH] if not item[1].done()]
                del self._pending[:MAX_BATCH]
                if batch:
                    await self._commit(batch)
        except BaseException as exc:
            # Cancelled with the connection's close: nobody waits for ever.
            for _, future in batch + self._pending:
                if not future.done():
                    future.set_exception(OperationalError(f"transaction not run: {exc!r}"))
            self._pending.clear()
            raise
        finally:
            self._committer = None

    async def _commit(self, batch: list[_Pending]) -> None:
        works = [work for work, _ in batch]
        try:
            outcomes = await self._commit_on_loop(works)
            if outcomes is None:
                async with self.acquire_connection() as connection:
                    # aiosqlite's own helpers (execute_fetchall, execute_insert) run this way:
                    # a function queued for the connection's thread. It is not public API; the
                    # SQLite tests exercise it.
                    run = asyncio.ensure_future(
                        connection._execute(_transaction, connection._conn, works)
                    )
                    if await _wait_out(run):
                        raise _Interrupted(run)
                    outcomes = run.result()
        except _Interrupted as interrupted:
            # Cancelled while the transaction ran in a thread, which no cancel stops: its
            # callers hear how it ended (not that it never ran), then the cancel goes on.
            try:
                self._settle(batch, interrupted.outcomes())
            except asyncio.CancelledError:
                unknown = OperationalError("transaction interrupted: it may have committed")
                self._fail(batch, unknown)
            except Exception as exc:
                self._fail(batch, exc)
            raise asyncio.CancelledError from None
        except Exception as exc:  # the whole transaction failed: every caller hears
            self._fail(batch, exc)
            return
        self._settle(batch, outcomes)

    @staticmethod
    def _fail(batch: list[_Pending], exc: BaseException) -> None:
        cause = exc.__cause__ if isinstance(exc, _WorkFailed) else exc
        for _, future in batch:
            if not future.done():
                future.set_exception(_as_tortoise_error(cause or exc))

    @staticmethod
    def _settle(batch: list[_Pending], outcomes: list[tuple[bool, Any]]) -> None:
        for (_, future), (ok, outcome) in zip(batch, outcomes, strict=True):
            if future.done():
                continue  # its caller gave up; the work is committed all the same
            if ok:
                future.set_result(outcome)
            else:
                future.set_exception(_as_tortoise_error(outcome))

    async def _commit_on_loop(
        self, works: list[Callable[[sqlite3.Connection], Any]]
    ) -> list[tuple[bool, Any]] | None:
        """`works` in one transaction on the loop's write connection, committed on its commit
        thread; None when the lock is taken or a call failed (nothing is left done)."""
        writer = self._writer or self._open_writer()
        if writer is None:
            return None
        try:
            results = _begun(writer, works)
        except _WorkFailed:
            return None
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return None
            raise
        assert self._committer_thread is not None
        commit = self._committer_thread.commit(writer)
        outcomes = [(True, result) for result in results]
        if await commit.wait_out():
            raise _Interrupted(commit, outcomes)
        commit.result()  # a failed commit was rolled back; it fails the whole batch
        return outcomes

    def _open_writer(self) -> sqlite3.Connection | None:
        # Tortoise's own settings for its connection (the URL's pragmas among them), and no
        # wait for the lock. Statements come from the loop's thread, commits from the commit
        # thread: never both at once, since one transaction runs at a time.
        settings = [f"{pragma}={value}" for pragma, value in self.pragmas.items()]
        writer = self._own_connection(*settings, "busy_timeout = 0")
        if writer is not None:
            self._committer_thread = _CommitThread()
        self._writer = writer
        return writer


_Pending = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]"]


async def _wait_out(future: asyncio.Future[Any]) -> bool:
    """Wait until `future`, work running in a thread, is done, even when this task is cancelled
    meanwhile (a cancel does not stop the thread); True if it was. Its outcome stays in it."""
    cancelled = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            cancelled = True
        except Exception:  # noqa: S110 (the future's own failure: its caller reads it there)
            pass
    return cancelled


class _CommitThread:
    """The thread that commits the loop's write connection, one commit at a time.

    A commit waits for the disk, so it leaves the loop; everything else about it is kept short,
    since the next batch begins only when the loop hears that this one committed. A thread
    pool's future wrapped for asyncio and shielded from cancels took three turns of the loop's
    queue to be heard (each behind every request then ready to run: 1.5 to 2 ms under a refresh
    load); here the thread's answer is one callback on the loop, and the waiting task's wakeup.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Commit | None] = queue.SimpleQueue()
        # A daemon, so that a client never closed does not keep the process alive; SQLite's
        # commit is atomic should the process end in the middle of one.
        self._thread = threading.Thread(target=self._run, name="keyturn-sqlite-commit", daemon=True)
        self._thread.start()

    def commit(self, writer: sqlite3.Connection) -> _Commit:
        job = _Commit(asyncio.get_running_loop(), writer)
        self._jobs.put(job)
        return job

    def stop(self) -> None:
        """Ends the thread once the commits asked for so far have run."""
        self._jobs.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                _commit_or_roll_back(job.writer)
            except BaseException as exc:  # the caller hears it: job.result()
                job.error = exc
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                job.loop.call_soon_threadsafe(job.finish)


class _Commit:
    """One commit handed to the commit thread: its outcome, heard on the loop."""

    __slots__ = ("_waiter", "error", "finished", "loop", "writer")

    def __init__(self, loop: asyncio.AbstractEventLoop, writer: sqlite3.Connection) -> None:
        self.loop = loop
        self.writer = writer
        self.error: BaseException | None = None
        self.finished = False
        self._waiter: asyncio.Future[None] | None = None

    def finish(self) -> None:
        """On the loop, once the thread is done with it."""
        self.finished = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait_out(self) -> bool:
        """Wait until the commit has run, even when this task is cancelled meanwhile (a cancel
        does not stop the thread); True if it was. Its outcome stays here (`result`)."""
        cancelled = False
        while not self.finished:
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            except asyncio.CancelledError:
                cancelled = True
        return cancelled

    def result(self) -> None:
        """Raises what failed the commit (which was then rolled back)."""
        if self.error is not None:
            raise self.error


class _Outcome(Protocol):
    def result(self) -> Any: ...


class _Interrupted(BaseException):
    """A transaction's run was cancelled while its thread went on to the end: how it ended."""

    def __init__(self, run: _Outcome, outcomes: list[tuple[bool, Any]] | None = None) -> None:
        super().__init__()
        self._run = run
        self._outcomes = outcomes

    def outcomes(self) -> list[tuple[bool, Any]]:
        """Each call's outcome; raises what failed the whole transaction (or, for a run whose
        own wait was cancelled too, CancelledError: nobody knows how it ended)."""
        result = self._run.result()
        return self._outcomes if self._outcomes is not None else result


MAX_BATCH = 64
"""At most this many calls share one transaction, which keeps any one of them from waiting long
behind the others."""


def _transaction(
    db: sqlite3.Connection, works: list[Callable[[sqlite3.Connection], Any]]
) -> list[tuple[bool, Any]]:
    """On the connection's thread: `works` in one transaction, each one's (ok, result or
    exception) in order; a failure to begin or commit is raised, for all of them.

    A call almost never fails, so they all run straight on, with no savepoint each: every
    statement here waits for the GIL from a busy event loop, and two more per call cost more
    than the calls themselves. When one does fail, the transaction is rolled back and each call
    runs again in one of its own, so that only the failed one is undone.
    """
    try:
        return [(True, result) for result in _committed(db, works)]
    except _WorkFailed:
        if len(works) == 1:
            raise
    outcomes: list[tuple[bool, Any]] = []
    for work in works:
        try:
            outcomes.append((True, _committed(db, [work])[0]))
        except _WorkFailed as failed:
            outcomes.append((False, failed.__cause__))
    return outcomes


class _WorkFailed(Exception):
    """A call's own work failed (its cause), as opposed to BEGIN or COMMIT."""


def _committed(
    db: sqlite3.Connection, works: list[Callable[[sqlite3.Connection], Any]]
) -> list[Any]:
    """`works` between `BEGIN IMMEDIATE` and `COMMIT`, their results; rolled back if any of
    them fails (`_WorkFailed`) or the commit does."""
    results = _begun(db, works)
    _commit_or_roll_back(db)
    return results


def _begun(db: sqlite3.Connection, works: list[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
    """`works` after `BEGIN IMMEDIATE`, their results, the transaction left open for
    `_commit_or_roll_back`; rolled back if any of them fails (`_WorkFailed`)."""
    if db.in_transaction:
        # Left open by an interrupted transaction: what it did is not ours to commit.
        db.execute("ROLLBACK")
    db.execute("BEGIN IMMEDIATE")
    try:
        results = []
        for work in works:
            try:
                results.append(work(db))
            except Exception as exc:
                raise _WorkFailed from exc
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return results


def _commit_or_roll_back(db: sqlite3.Connection) -> None:
    """`COMMIT`; a transaction that cannot commit is rolled back."""
    try:
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _as_tortoise_error(exc: BaseException) -> BaseException:
    """tortoise's error for an SQLite one, caused by it (as `raise ... from` would make it)."""
    error: BaseException
    if isinstance(exc, sqlite3.IntegrityError):
        error = IntegrityError(exc)
    elif isinstance(exc, sqlite3.Error):
        error = OperationalError(exc)
    else:
        return exc
    error.__cause__ = exc
    return error


client_class = ImmediateSqliteClient


def lock_file(db_file: Path) -> Path:
    """The file beside a database that says it is in use (SQLite's own locks live in the
    database file, and opening and closing it again would drop them: this is another file)."""
    return db_file.with_name(db_file.name + ".lock")


def _open_lock_file(db_file: Path) -> int:
    return os.open(lock_file(db_file), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


class InUse:
    """A shared lock on a database's lock file, held while a process has it open: every
    connection of every Keyturn process (each worker of `keyturn serve`, each command) holds
    one, so that `keyturn migrate` can tell the database is in use (`exclusive_use`)."""

    def __init__(self, db_file: Path) -> None:
        self._fd: int | None = None
        if fcntl is None or not db_file.parent.is_dir():
            return
        try:
            fd = _open_lock_file(db_file)
        except OSError:
            return  # a folder it may not write in: reads and writes fail on their own
        fcntl.flock(fd, fcntl.LOCK_SH)  # waits out a migration that holds it exclusively
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # which releases the lock
            self._fd = None


class DatabaseInUse(Exception):
    """Another process has the database open."""


@contextlib.contextmanager
def exclusive_use(db_file: Path) -> Iterator[None]:
    """Holds the database's lock file exclusively, or raises DatabaseInUse at once when any
    Keyturn process has the database open. Meanwhile no other can open it: they wait."""
    if fcntl is None:
        yield
        return
    fd = _open_lock_file(db_file)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatabaseInUse(str(db_file)) from None
        yield
    finally:
        os.close(fd)
