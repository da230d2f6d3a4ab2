"""Rotations whose answer was lost: so that the client's retry is not taken for theft.

A refresh whose write fails may still have committed: PostgreSQL ran the statement but its
answer never came back (a connection reset after the commit, a network that held the statement
and delivered it late, a request cancelled on its way). The client hears SERVICE_UNAVAILABLE and
retries, as it should, with the token it holds. By then that token is the session's previous
one, and after the grace window a previous token is reuse: the session was revoked, and a theft
recorded, for an outage.

So the process that could not tell remembers each rotation it attempted: the session, the token
presented, and the id of the token it meant to write (every one: a retry that fails during the
outage attempts a rotation of its own, which must not hide the first). A previous token that
comes back while the session's current token is one of those ids, whose answer was lost, gets
the current pair, as a retry inside the grace window does. Nobody can hold that token: it was
never sent. The first such answer uses the memory up: from then on the token has the grace
window's tolerance (`handed_back`), no more, so a copy of it replayed later is reuse as ever.
Within `LOST_WINDOW` only, and never with a grace window of 0, which turns every tolerance off.

With `KEYTURN_REDIS_URL` the record is shared, so that a retry reaching another instance or
worker is recognised too; without it, only by the process that failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from api.clock import Clock
from api.redis_trouble import is_redis_failure, redis_failures_ignored

logger = logging.getLogger("keyturn.refresh")

LOST_WINDOW = 3600  # seconds: a client retries with backoff, and outages can last minutes
MAX_REMEMBERED = 10_000  # (session, token) pairs per process; the oldest go first
MAX_ATTEMPTS = 16  # rotations remembered per pair: a client retrying through an outage
REDIS_TIMEOUT = 1.0

_Key = tuple[uuid.UUID, uuid.UUID]  # (session, presented token)


class LostRotations:
    def __init__(self, clock: Clock, redis_url: str | None, namespace: str, grace: int) -> None:
        self._clock = clock
        self._namespace = namespace
        self._grace = grace
        # Per (session, token): the ids attempted, until when, and whether Redis has them all
        # (then Redis, where any instance's answer shortens them, is the one to ask).
        self._memory: OrderedDict[_Key, tuple[list[uuid.UUID], datetime, bool]] = OrderedDict()
        self._redis = (
            Redis.from_url(
                redis_url,
                socket_connect_timeout=REDIS_TIMEOUT,
                socket_timeout=REDIS_TIMEOUT,
                retry=Retry(NoBackoff(), 0),
            )
            if redis_url
            else None
        )
        self._writing: set[asyncio.Task[None]] = set()

    def remember(self, session_id: uuid.UUID, presented: uuid.UUID, written: uuid.UUID) -> None:
        """A rotation of `session_id` from `presented` to `written` failed with no known outcome.

        Synchronous, so that a cancelled request records it too; Redis is written in the
        background.
        """
        key = (session_id, presented)
        remembered = self._memory.pop(key, None)
        attempts = [*(remembered[0][-(MAX_ATTEMPTS - 1) :] if remembered else []), written]
        self._memory[key] = (attempts, self._clock() + timedelta(seconds=LOST_WINDOW), False)
        while len(self._memory) > MAX_REMEMBERED:
            self._memory.popitem(last=False)
        self._in_background(lambda redis: self._store(redis, key, written))

    async def written_for(self, session_id: uuid.UUID, presented: uuid.UUID) -> set[uuid.UUID]:
        """The token ids that failed rotations of `session_id` from `presented` meant to write,
        remembered here or (with Redis) anywhere, within the window. Where the session's
        current token is one of them, that rotation did commit and its answer was lost."""
        if self._grace == 0:
            return set()
        key = (session_id, presented)
        written: set[uuid.UUID] = set()
        shared = False
        remembered = self._memory.get(key)
        if remembered is not None:
            attempts, until, shared = remembered
            if self._clock() <= until:
                written.update(attempts)
            else:
                del self._memory[key]
        stored = await self._load(key)
        if stored is None:  # no Redis, or none reachable: what this process knows
            return written
        # What Redis holds is what every instance has left after answering; this process's
        # memory adds only what it could not share.
        return stored if shared else written | stored

    def handed_back(self, session_id: uuid.UUID, presented: uuid.UUID) -> None:
        """The lost rotation's pair went out: from now on its token has the grace window's
        tolerance and no more, here and (in the background) in Redis."""
        key = (session_id, presented)
        until = self._clock() + timedelta(seconds=self._grace)
        remembered = self._memory.get(key)
        if remembered is not None:
            self._memory[key] = (remembered[0], min(remembered[1], until), remembered[2])
        self._in_background(lambda redis: self._shorten(redis, key))

    async def flush(self) -> None:
        """Until the Redis writes begun so far are done (or have failed)."""
        if self._writing:
            await asyncio.wait(self._writing, timeout=2 * REDIS_TIMEOUT)

    async def close(self) -> None:
        await self.flush()
        if self._redis is not None:
            with redis_failures_ignored():
                await self._redis.aclose()

    def _in_background(self, work: Callable[[Redis], Coroutine[Any, Any, None]]) -> None:
        """`work` on Redis, if there is one, without the caller waiting for it."""
        if self._redis is None:
            return
        task = asyncio.get_running_loop().create_task(work(self._redis))
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)

    def _redis_key(self, key: _Key) -> str:
        session_id, presented = key
        return f"keyturn:{self._namespace}:lost-rotation:{session_id}:{presented}"

    async def _store(self, redis: Redis, key: _Key, written: uuid.UUID) -> None:
        try:
            async with redis.pipeline(transaction=True) as pipe:
                pipe.sadd(self._redis_key(key), str(written))
                pipe.expire(self._redis_key(key), LOST_WINDOW)
                await pipe.execute()
        except Exception as exc:
            if not is_redis_failure(exc):
                raise
            logger.warning(
                "cannot share a refresh whose answer was lost through Redis (%s): only this "
                "process will recognise its retry",
                type(exc).__name__,
            )
            return
        remembered = self._memory.get(key)
        if remembered is not None and remembered[0][-1] == written:  # all of it is in Redis
            self._memory[key] = (remembered[0], remembered[1], True)

    async def _shorten(self, redis: Redis, key: _Key) -> None:
        name = self._redis_key(key)
        with redis_failures_ignored():
            # Shortened, never lengthened (EXPIRE's LT option needs Redis 7). A grace of 0
            # never gets here: written_for finds nothing to hand back.
            if await redis.ttl(name) > self._grace:
                await redis.expire(name, self._grace)

    async def _load(self, key: _Key) -> set[uuid.UUID] | None:
        """What Redis holds for `key`; None without Redis, or when it cannot be reached."""
        if self._redis is None:
            return None
        try:
            members = await self._redis.smembers(self._redis_key(key))
        except Exception as exc:
            if not is_redis_failure(exc):
                raise
            return None
        written = set()
        for member in members:
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                text = member.decode() if isinstance(member, bytes) else member
                written.add(uuid.UUID(text))
        return written
