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

tortoise_config names this module as the engine of PostgreSQL URLs; tortoise reads `client_class`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from tortoise.backends.asyncpg.client import AsyncpgDBClient
from tortoise.backends.base.client import PoolConnectionWrapper
from tortoise.exceptions import IntegrityError, OperationalError

HELD_CONNECTIONS = 4
# SQLSTATE classes of errors that end or spoil the connection, not the statement: connection
# exception, insufficient resources, operator intervention (a server shutting down or a backend
# terminated), system error, internal error.
_CONNECTION_CLASSES = frozenset({"08", "53", "57", "58", "XX"})


class PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    def get_reset_query(self) -> str:
        return ""


class KeyturnAsyncpgClient(AsyncpgDBClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._idle: list[PoolConnectionProxy] = []  # held and free, the last used on top
        self._closing = False
        # One slot per connection that may be held: a statement that finds them all busy
        # waits for one, which is never long (each holds one short statement, and asyncpg's
        # command_timeout bounds it), rather than paying for a trip through the pool.
        self._slots = asyncio.Semaphore(self.may_hold) if self.may_hold else None

    @property
    def may_hold(self) -> int:
        """How many connections this client may keep out of the pool."""
        return min(HELD_CONNECTIONS, int(self.pool_maxsize) // 2)

    async def fetch_held(self, sql: str, values: list[Any]) -> list[asyncpg.Record]:
        """Runs one statement, outside any transaction, on a held connection (waiting for one
        when all are busy). Errors are tortoise's, as for any other statement."""
        self.log.debug("%s: %s", sql, values)  # as tortoise logs every statement
        try:
            async with self._slots or contextlib.nullcontext():
                held = await self._take() if self._slots is not None else None
                if held is None:  # a pool too small to lend any, or closing
                    async with self.acquire_connection() as pooled:
                        rows: list[asyncpg.Record] = await pooled.fetch(sql, *values)
                        return rows
                return await self._fetch_on(held, sql, values)
        except asyncpg.PostgresError as exc:
            translated = _as_tortoise_error(exc)
            if translated is None:
                raise
            raise translated from exc

    async def _fetch_on(
        self, held: PoolConnectionProxy, sql: str, values: list[Any]
    ) -> list[asyncpg.Record]:
        try:
            rows: list[asyncpg.Record] = await held.fetch(sql, *values)
        except asyncpg.PostgresError as exc:
            # Refused by the server, which leaves the connection as it was (a statement outside
            # a transaction keeps none open behind it), unless the error is the connection's.
            await self._put_back(held, usable=_keeps_connection(exc))
            raise
        except BaseException:
            # Lost, timed out or cancelled mid-statement: the pool knows how to wait for a
            # cancellation to finish, or to drop a connection that is gone.
            await self._put_back(held, usable=False)
            raise
        await self._put_back(held, usable=True)
        return rows

    async def _take(self) -> PoolConnectionProxy | None:
        """A held connection, under a slot: a free one, else one more from the pool (fewer
        than may_hold are held when no slot's connection is free); None when closing."""
        while self._idle:
            held = self._idle.pop()
            if _alive(held):
                return held
            # Dropped while idle (the server restarted, or ended the backend): the pool has
            # it back or cleans it up, and the statement goes on another connection.
            await self._put_back(held, usable=False)
        if self._closing:
            return None
        await PoolConnectionWrapper(self, self._pool_init_lock).ensure_connection()
        assert self._pool is not None
        proxy: PoolConnectionProxy = await self._pool.acquire()
        return proxy

    async def _put_back(self, held: PoolConnectionProxy, *, usable: bool) -> None:
        if usable and not self._closing and _alive(held):
            self._idle.append(held)
        elif self._pool is not None:
            # Given back to the pool, which closes it or makes it whole (also when close()
            # began while it was busy: the pool is waiting for it).
            await self._pool.release(held)

    async def close(self) -> None:
        self._closing = True
        idle, self._idle = self._idle, []
        for held in idle:
            await self._put_back(held, usable=False)
        await super().close()
        self._closing = False


def _keeps_connection(exc: asyncpg.PostgresError) -> bool:
    """Whether a connection is still good after the server refused a statement with `exc`: not
    when the error is of a connection class, nor when it has no SQLSTATE to say which it is."""
    return (exc.sqlstate or "XX")[:2] not in _CONNECTION_CLASSES


def _alive(held: PoolConnectionProxy) -> bool:
    try:
        return not held.is_closed()
    except asyncpg.InterfaceError:
        return False  # closed, and already taken back by the pool (asyncpg does that itself)


def _as_tortoise_error(exc: asyncpg.PostgresError) -> Exception | None:
    """The exception tortoise raises for this one (its asyncpg client's translation), if any."""
    if isinstance(exc, asyncpg.SyntaxOrAccessError | asyncpg.DataError):
        return OperationalError(exc)
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return IntegrityError(exc)
    return None


client_class = KeyturnAsyncpgClient
