"""Keyturn's tortoise engine for PostgreSQL: asyncpg connections that go back to the pool without
a reset query, and a few held out of it for the hot statements.

tortoise takes a connection from asyncpg's pool for every statement it runs outside a transaction,
and asyncpg resets each connection it is given back with a query of its own (`SELECT
pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;`): a second round trip for every
read. That query undoes session state that Keyturn never creates: it takes no advisory locks,
declares no cursors, listens to nothing (revocations travel through Redis) and never runs `SET`
outside a transaction (server settings are given when a connection opens). asyncpg still rolls
back a transaction left open on a returned connection; that part of the reset is not a query of
`get_reset_query`, the documented hook this overrides.

Even without the reset, taking a connection from the pool and giving it back costs more CPU than
a short statement's own round trip (the give-back runs as a task of its own, under
`asyncio.shield`), and tortoise adds its own layers around each statement. The statements that
run on every refresh and on every access check that misses the cache (`models.statements`) run
instead on a connection this client holds: at most `HELD_CONNECTIONS` of them, never more than
half of the pool, taken from the pool when first needed and given back when one fails or the
client closes. When every held connection is busy, a statement waits for one: under load most of
them were busy at once (a commit waits for PostgreSQL's flush to disk), and with a fallback to the
pool two of every three statements still went through it.

A round trip costs the event loop more than the statement: about 40% of a refresh's time on the
loop went to its one statement. So the rotation, the write every refresh makes, is grouped
(`fetch_grouped`): executions that arrive while earlier ones are on their way go out together,
pipelined in one round trip and one implicit transaction (asyncpg's `fetchmany`), with one
flush to disk for all of them, as SQLite's group commit does.

tortoise_config names this module as the engine of PostgreSQL URLs; tortoise reads `client_class`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, cast

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from tortoise.backends.asyncpg.client import AsyncpgDBClient, TransactionWrapper
from tortoise.backends.base.client import (
    PoolConnectionWrapper,
    TransactionalDBClient,
    TransactionContext,
    TransactionContextPooled,
)
from tortoise.connection import get_connections
from tortoise.exceptions import IntegrityError, OperationalError

HELD_CONNECTIONS = 4
DEFAULT_WAIT_LIMIT = 5.0  # api/db.py's default `timeout`
CLOSE_WAIT = 2.0
# Groups on their way at once, each on a held connection; a call that arrives while they are
# busy goes out with the next. One: under load (16 clients) its groups were larger than with two
# (about 6 rotations against 3.6), for less loop time per refresh, and the held
# connections stay free for the access check's reads.
GROUP_RUNNERS = 1
MAX_GROUP = 64
# SQLSTATE classes of errors that end or spoil the connection, not the statement: connection
# exception, insufficient resources, operator intervention (a server shutting down or a backend
# terminated), system error, internal error.
_CONNECTION_CLASSES = frozenset({"08", "53", "57", "58", "XX"})


class PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    def get_reset_query(self) -> str:
        return ""


Fetch = Callable[[PoolConnectionProxy], Awaitable[list[asyncpg.Record]]]


class _Grouped(NamedTuple):
    sql: str
    values: list[Any]
    answer: asyncio.Future[asyncpg.Record]


class _PooledTransaction(TransactionContextPooled):
    """tortoise's transaction on a pooled connection, that gives the connection back when its
    BEGIN fails. tortoise's own takes the connection, sets the task's current transaction,
    then sends BEGIN; when BEGIN fails (the backend was just terminated), `__aexit__` never
    runs, and the connection stayed out of the pool for good: a few each time PostgreSQL
    restarted or ended backends, until no statement could get one."""

    async def __aenter__(self) -> TransactionalDBClient:
        parent = cast(KeyturnAsyncpgClient, self.client._parent)
        connection = await parent.acquire_bounded()
        pool = parent._pool
        assert pool is not None
        self.client._connection = connection
        self.token = get_connections().set(self.connection_name, self.client)
        try:
            await self.client.begin()
        except BaseException:
            get_connections().reset(self.token)
            with contextlib.suppress(Exception):  # a broken connection: the pool drops it
                await pool.release(connection)
            raise
        return self.client


class _BoundedPoolConnection(PoolConnectionWrapper[asyncpg.Connection]):
    """tortoise's wrapper for one statement on a pooled connection, that waits for the
    connection no longer than the client's `wait_limit` (tortoise's own waits for ever)."""

    async def __aenter__(self) -> asyncpg.Connection:
        self.connection = await cast(KeyturnAsyncpgClient, self.client).acquire_bounded()
        return self.connection


class KeyturnAsyncpgClient(AsyncpgDBClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._idle: list[PoolConnectionProxy] = []  # held and free, the last used on top
        self._closing = False
        # One slot per connection that may be held: a statement that finds them all busy
        # waits for one, which is never long (each holds one short statement, and asyncpg's
        # command_timeout bounds it), rather than paying for a trip through the pool.
        self._slots = asyncio.Semaphore(self.may_hold) if self.may_hold else None
        self._grouped: list[_Grouped] = []  # fetch_grouped's calls not yet sent
        self._runner_tasks: set[asyncio.Task[None]] = set()
        self._releasing: set[asyncio.Task[None]] = set()  # broken connections on their way back

    def _in_transaction(self) -> TransactionContext:
        return _PooledTransaction(TransactionWrapper(self), self._pool_init_lock)

    def acquire_connection(self) -> PoolConnectionWrapper[asyncpg.Connection]:
        return _BoundedPoolConnection(self, self._pool_init_lock)

    async def acquire_bounded(self, deadline: float | None = None) -> PoolConnectionProxy:
        """A connection from the pool (made first if need be), waited for `wait_limit` at most,
        or until `deadline` (the loop's time) when the statement has already waited for a
        slot: the one way every statement here takes one. A wait that runs out, or has nothing
        left, fails with TimeoutError, as the pool's own does."""
        await PoolConnectionWrapper(self, self._pool_init_lock).ensure_connection()
        assert self._pool is not None
        if deadline is not None and deadline <= asyncio.get_running_loop().time():
            raise TimeoutError
        # The pool is given the whole limit even under a deadline (None: no deadline): asyncpg
        # keeps it as the budget of the connection's return (to wait for a cancelled statement
        # to end, else to drop the connection), and a held connection taken with 0.1 s left
        # would keep 0.1 s for as long as it is held.
        async with asyncio.timeout_at(deadline):
            proxy: PoolConnectionProxy = await self._pool.acquire(timeout=self.wait_limit)
        return proxy

    @property
    def wait_limit(self) -> float:
        """The longest a statement waits for a connection: the URL's `timeout` (5 s by
        default), which also bounds connecting one. Without it, a statement queued behind
        others on a stalled network waited for each of them in turn (45 s for the 30th)."""
        return float(self.extra.get("timeout", DEFAULT_WAIT_LIMIT))

    @property
    def may_hold(self) -> int:
        """How many connections this client may keep out of the pool."""
        return min(HELD_CONNECTIONS, int(self.pool_maxsize) // 2)

    async def fetch_held(self, sql: str, values: list[Any]) -> list[asyncpg.Record]:
        """Runs one statement, outside any transaction, on a held connection (waiting for one
        when all are busy). Errors are tortoise's, as for any other statement."""
        self.log.debug("%s: %s", sql, values)  # as tortoise logs every statement
        return await self._on_held(lambda conn: conn.fetch(sql, *values))

    async def fetch_grouped(self, sql: str, values: list[Any]) -> asyncpg.Record:
        """Runs a statement that returns exactly one row, outside any transaction, together with
        the other executions of statements waiting to go; its row.

        The executions of one group run in order in one implicit transaction: each sees what the
        ones before it wrote, and they commit, or fail, together. When the server refuses the
        group, nothing of it was written, and each execution runs again alone, so that only the
        one at fault fails. A lost connection or a timeout fails the whole group, as it fails a
        single statement. A caller that gives up before its group is sent is dropped from it;
        once sent, its execution commits or not with the others.
        """
        answer: asyncio.Future[asyncpg.Record] = asyncio.get_running_loop().create_future()
        self._grouped.append(_Grouped(sql, values, answer))
        if len(self._runner_tasks) < GROUP_RUNNERS:
            runner = asyncio.create_task(self._run_groups())
            self._runner_tasks.add(runner)
            runner.add_done_callback(self._runner_tasks.discard)
        return await answer

    async def _run_groups(self) -> None:
        group: list[_Grouped] = []
        rest: list[_Grouped]
        try:
            while self._grouped:
                sql = self._grouped[0].sql
                group, rest = [], []
                for call in self._grouped:
                    same = call.sql == sql and len(group) < MAX_GROUP
                    (group if same else rest).append(call)
                self._grouped = rest
                group = [call for call in group if not call.answer.done()]
                if group:
                    await self._run_group(sql, group)
        except BaseException as exc:
            # Cancelled (the loop is closing): nobody waits for ever.
            _fail(group + self._grouped, OperationalError(f"statement not run: {exc!r}"))
            self._grouped.clear()
            raise
        finally:
            # In the same step that found nothing left to send: a call that comes after it
            # finds a runner missing, and starts one.
            runner = asyncio.current_task()
            if runner is not None:
                self._runner_tasks.discard(runner)

    async def _run_group(self, sql: str, group: list[_Grouped]) -> None:
        values = [call.values for call in group]
        self.log.debug("%s: %s", sql, values)
        try:
            rows = await self._on_held(lambda conn: conn.fetchmany(sql, values))
        except Exception as exc:
            if len(group) == 1 or not _refused(exc):
                _fail(group, exc)
                return
            # Refused by the server, so rolled back as a whole: each alone, and only the one
            # at fault fails.
            for call in group:
                try:
                    _answer(call, await self.fetch_held(call.sql, call.values))
                except Exception as alone:
                    _fail([call], alone)
            return
        if len(rows) != len(group):
            _fail(group, OperationalError(f"{len(rows)} rows for {len(group)} executions"))
            return
        for call, row in zip(group, rows, strict=True):
            _answer(call, [row])

    async def _on_held(self, fetch: Fetch) -> list[asyncpg.Record]:
        """`fetch` on a held connection (waiting for one when all are busy), outside any
        transaction. Errors are tortoise's, as for any other statement."""
        try:
            if self._slots is None:  # a pool too small to lend any
                async with self.acquire_connection() as pooled:
                    return await fetch(pooled)
            # A timer only where there is a wait; one deadline for all of it, the slot's and
            # then the pool's: with a limit each, SERVICE_UNAVAILABLE came up to twice as late.
            deadline = None
            if self._slots.locked():
                deadline = asyncio.get_running_loop().time() + self.wait_limit
                async with asyncio.timeout_at(deadline):
                    await self._slots.acquire()
            else:
                await self._slots.acquire()
            try:
                held = await self._take(deadline)
                return await self._fetch_on(held, fetch)
            finally:
                self._slots.release()
        except asyncpg.PostgresError as exc:
            translated = _as_tortoise_error(exc)
            if translated is None:
                raise
            raise translated from exc

    async def _fetch_on(self, held: PoolConnectionProxy, fetch: Fetch) -> list[asyncpg.Record]:
        try:
            rows = await fetch(held)
        except asyncpg.PostgresError as exc:
            # Refused by the server, which leaves the connection as it was (a statement outside
            # a transaction keeps none open behind it), unless the error is the connection's.
            await self._put_back(held, usable=_keeps_connection(exc))
            raise
        except BaseException:
            # Lost, timed out or cancelled mid-statement: the pool knows how to wait for a
            # cancellation to finish, or to drop a connection that is gone. Not this caller's
            # wait: on a stalled network the cancellation needs a connection of its own, and
            # the caller's answer (SERVICE_UNAVAILABLE) waited for it, up to twice as long.
            self._release_later(held)
            raise
        await self._put_back(held, usable=True)
        return rows

    async def _take(self, deadline: float | None) -> PoolConnectionProxy:
        """A held connection, under a slot: a free one, else one more from the pool (fewer
        than may_hold are held when no slot's connection is free), waited for until
        `deadline` (the loop's time), or `wait_limit` when there was no wait before. When
        closing, the pool's connection is lent for this statement only: `_put_back` gives it
        back."""
        while self._idle:
            held = self._idle.pop()
            if _alive(held):
                return held
            # Dropped while idle (the server restarted, or ended the backend): the pool has
            # it back or cleans it up, and the statement goes on another connection.
            await self._put_back(held, usable=False)
        return await self.acquire_bounded(deadline)

    async def _put_back(self, held: PoolConnectionProxy, *, usable: bool) -> None:
        if usable and not self._closing and _alive(held):
            self._idle.append(held)
        elif self._pool is not None:
            # Given back to the pool, which closes it or makes it whole (also when close()
            # began while it was busy: the pool is waiting for it).
            await self._pool.release(held)

    def _release_later(self, held: PoolConnectionProxy) -> None:
        release = asyncio.get_running_loop().create_task(self._put_back(held, usable=False))
        self._releasing.add(release)
        release.add_done_callback(self._releasing.discard)
        release.add_done_callback(_released)

    async def close(self) -> None:
        """Gives everything back and closes the pool, in `CLOSE_WAIT` seconds at most: on a
        stalled network a graceful close waits for every connection's cancellation, and a
        SIGTERM's shutdown waited with it (16 s in all). Past that, the pool is terminated."""
        try:
            async with asyncio.timeout(CLOSE_WAIT):
                await self._close_gracefully()
        except TimeoutError:
            if self._pool is not None:
                self._pool.terminate()
                self._pool = None
        finally:
            self._closing = False

    async def _close_gracefully(self) -> None:
        if self._releasing:
            await asyncio.wait(set(self._releasing))
        if self._runner_tasks:
            # What was asked for before the close runs, and its callers are answered.
            await asyncio.wait(set(self._runner_tasks))
        self._closing = True
        idle, self._idle = self._idle, []
        for held in idle:
            await self._put_back(held, usable=False)
        await super().close()


def _released(task: asyncio.Task[None]) -> None:
    # A broken connection's trip back may fail too (its cancellation timed out): the pool has
    # dropped it, and there is nobody to tell. Retrieved here, or asyncio logs a traceback.
    if not task.cancelled():
        task.exception()


def _keeps_connection(exc: asyncpg.PostgresError) -> bool:
    """Whether a connection is still good after the server refused a statement with `exc`: not
    when the error is of a connection class, nor when it has no SQLSTATE to say which it is."""
    return (exc.sqlstate or "XX")[:2] not in _CONNECTION_CLASSES


def _alive(held: PoolConnectionProxy) -> bool:
    try:
        return not held.is_closed()
    except asyncpg.InterfaceError:
        return False  # closed, and already taken back by the pool (asyncpg does that itself)


def _refused(exc: BaseException) -> bool:
    """Whether the server refused a statement (translated or not) and kept its connection."""
    cause = exc if isinstance(exc, asyncpg.PostgresError) else exc.__cause__
    return isinstance(cause, asyncpg.PostgresError) and _keeps_connection(cause)


def _answer(call: _Grouped, rows: list[asyncpg.Record]) -> None:
    if call.answer.done():  # its caller gave up
        return
    if len(rows) == 1:
        call.answer.set_result(rows[0])
    else:
        call.answer.set_exception(OperationalError(f"{len(rows)} rows for one execution"))


def _fail(calls: list[_Grouped], exc: BaseException) -> None:
    for call in calls:
        if not call.answer.done():
            call.answer.set_exception(exc)


def _as_tortoise_error(exc: asyncpg.PostgresError) -> Exception | None:
    """The exception tortoise raises for this one (its asyncpg client's translation), if any."""
    if isinstance(exc, asyncpg.SyntaxOrAccessError | asyncpg.DataError):
        return OperationalError(exc)
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return IntegrityError(exc)
    return None


client_class = KeyturnAsyncpgClient
