"""Rotations whose answer was lost: so that the client's retry is not taken for theft.

A refresh whose write fails may still have committed: PostgreSQL ran the statement but its
answer never came back (a connection reset after the commit, a network that held the statement
and delivered it late, a request cancelled on its way). The client hears SERVICE_UNAVAILABLE and
retries, as it should, with the token it holds. By then that token is the session's previous
one, and after the grace window a previous token is reuse: the session was revoked, and a theft
recorded, for an outage.

So the process that could not tell remembers the rotation it attempted: the session, the token
presented and the id of the token it meant to write. A previous token that comes back while the
session's current token is exactly that id, the one whose answer was lost, gets the current pair,
as a retry inside the grace window does, for `LOST_WINDOW` seconds. Nobody can hold that token:
it was never sent. With `KEYTURN_REDIS_URL` the record is shared, so that a retry reaching
another instance or worker is recognised too; without it, only by the process that failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from datetime import datetime, timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.clock import Clock

logger = logging.getLogger("keyturn.refresh")

LOST_WINDOW = 3600  # seconds: a client retries with backoff, and outages can last minutes
MAX_REMEMBERED = 10_000  # per process; the oldest go first
REDIS_TIMEOUT = 1.0


class LostRotations:
    def __init__(self, clock: Clock, redis_url: str | None, namespace: str) -> None:
        self._clock = clock
        self._redis_url = redis_url
        self._namespace = namespace
        self._memory: OrderedDict[uuid.UUID, tuple[uuid.UUID, uuid.UUID, datetime]] = OrderedDict()
        self._writing: set[asyncio.Task[None]] = set()

    def remember(self, session_id: uuid.UUID, presented: uuid.UUID, written: uuid.UUID) -> None:
        """A rotation of `session_id` from `presented` to `written` failed with no known outcome.

        Synchronous, so that a cancelled request records it too; Redis is written in the
        background.
        """
        until = self._clock() + timedelta(seconds=LOST_WINDOW)
        self._memory.pop(session_id, None)
        self._memory[session_id] = (presented, written, until)
        while len(self._memory) > MAX_REMEMBERED:
            self._memory.popitem(last=False)
        if self._redis_url:
            task = asyncio.get_running_loop().create_task(
                self._store(session_id, f"{presented} {written}")
            )
            self._writing.add(task)
            task.add_done_callback(self._writing.discard)

    async def written_for(self, session_id: uuid.UUID, presented: uuid.UUID) -> uuid.UUID | None:
        """The token id a failed rotation of `session_id` from `presented` meant to write, if
        one is remembered within the window. Where the session's current token is that id, the
        rotation did commit and its answer was lost."""
        remembered = self._memory.get(session_id)
        if remembered is not None:
            was_presented, written, until = remembered
            if self._clock() <= until:
                return written if was_presented == presented else None
            del self._memory[session_id]
        if not self._redis_url:
            return None
        stored = await self._load(session_id)
        if stored is None:
            return None
        was_presented_text, _, written_text = stored.partition(" ")
        try:
            if uuid.UUID(was_presented_text) == presented:
                return uuid.UUID(written_text)
        except ValueError:
            pass
        return None

    async def close(self) -> None:
        if self._writing:
            await asyncio.wait(self._writing, timeout=REDIS_TIMEOUT)

    def _key(self, session_id: uuid.UUID) -> str:
        return f"keyturn:{self._namespace}:lost-rotation:{session_id}"

    def _client(self) -> Redis:
        assert self._redis_url is not None
        return Redis.from_url(
            self._redis_url,
            socket_connect_timeout=REDIS_TIMEOUT,
            socket_timeout=REDIS_TIMEOUT,
            retry_on_timeout=False,
        )

    async def _store(self, session_id: uuid.UUID, value: str) -> None:
        client = self._client()
        try:
            await client.set(self._key(session_id), value, ex=LOST_WINDOW)
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning(
                "cannot share a refresh whose answer was lost through Redis (%s): only this "
                "process will recognise its retry",
                type(exc).__name__,
            )
        finally:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await client.aclose()

    async def _load(self, session_id: uuid.UUID) -> str | None:
        client = self._client()
        try:
            value = await client.get(self._key(session_id))
        except (RedisError, OSError, TimeoutError):
            return None
        finally:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await client.aclose()
        return value.decode() if isinstance(value, bytes) else None
