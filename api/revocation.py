"""Revocation broadcast: every instance sharing a Redis drops a revoked session at once.

A revocation made here is published on a Redis channel; every instance (and every worker)
subscribes and drops the entry from its access-check cache. Redis pub/sub delivers at most
once, so the broadcast only ever shortens the time a revocation takes to bite: the cache entries
keep their `revocation_cache_ttl` bound whatever happens to Redis. When Redis goes away the
instance says so once, keeps answering from the TTL-bounded database check, and reconnects in
the background; a failed publish never fails the request that revoked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from api.access import AccessChecker
from api.redis_trouble import describe, is_redis_failure, redis_failures_ignored

logger = logging.getLogger("keyturn.revocation")

CHANNEL = "keyturn:revocations"
CONNECT_TIMEOUT = 2.0
PUBLISH_TIMEOUT = 1.0
START_WAIT = 2.0
# A subscriber only reads, so a silent network never raises: ping when idle, and give up on the
# connection when not even the pong comes back.
IDLE_PING = 5.0
RECONNECT_MIN = 0.2
RECONNECT_MAX = 5.0

_SESSION = "s"
_USER = "u"


async def announce_user_revoked(redis_url: str, user_id: uuid.UUID) -> bool:
    """Tells the running instances of a revocation made outside them (the command line).

    False when Redis could not be reached: the instances then see it within their cache TTL.
    """
    redis = Redis.from_url(
        redis_url,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=PUBLISH_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT + PUBLISH_TIMEOUT):
            await redis.publish(CHANNEL, f"{_USER} cli-{uuid.uuid4().hex[:8]} {user_id}")
    except Exception as exc:
        if not is_redis_failure(exc):
            raise
        return False
    finally:
        await redis.aclose()
    return True


class RevocationBus:
    """Publishes this instance's revocations and applies everyone else's to `access`."""

    def __init__(self, redis_url: str, access: AccessChecker, cache_ttl: float) -> None:
        self._access = access
        self._ttl = cache_ttl
        self._origin = uuid.uuid4().hex[:12]
        # redis-py's own retries would reconnect silently; this class does it, and logs it.
        self._redis = Redis.from_url(
            redis_url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=PUBLISH_TIMEOUT,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
        )
        self._listener: asyncio.Task[None] | None = None
        self._first_attempt = asyncio.Event()
        self._publishing: set[asyncio.Task[None]] = set()
        self.connected = False
        self._degraded_logged = False
        self._publish_failing = False

    async def start(self) -> None:
        """Subscribe; waits briefly for the first attempt, then goes on without Redis if need be."""
        self._access.broadcast = self
        self._listener = asyncio.create_task(self._listen(), name="keyturn-revocations")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(START_WAIT):
                await self._first_attempt.wait()

    async def stop(self) -> None:
        self._access.broadcast = None
        if self._publishing:
            # Revocations made just before shutdown still go out, if Redis answers promptly.
            await asyncio.wait(self._publishing, timeout=PUBLISH_TIMEOUT)
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await self._redis.aclose()

    # The access checker calls these after a revocation in this process has committed.

    def session_revoked(self, session_id: uuid.UUID) -> None:
        self._publish(_SESSION, session_id)

    def user_revoked(self, user_id: uuid.UUID) -> None:
        self._publish(_USER, user_id)

    def _publish(self, kind: str, ident: uuid.UUID) -> None:
        task = asyncio.get_running_loop().create_task(self._send(f"{kind} {self._origin} {ident}"))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _send(self, message: str) -> None:
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                await self._redis.publish(CHANNEL, message)
        except Exception as exc:
            if not is_redis_failure(exc):
                raise
            if not self._publish_failing:
                self._publish_failing = True
                logger.warning(
                    "cannot publish revocations to Redis (%s): other instances see them "
                    "within %ss through their database check",
                    describe(exc),
                    self._ttl,
                )
            return
        if self._publish_failing:
            self._publish_failing = False
            logger.info("publishing revocations to Redis again")

    async def _listen(self) -> None:
        delay = RECONNECT_MIN
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                self._on_connected()
                self._first_attempt.set()  # start() waits for no more than this
                delay = RECONNECT_MIN
                await self._read(pubsub)
            except Exception as exc:
                if not is_redis_failure(exc):
                    raise
                self._on_lost(exc)
            finally:
                self._first_attempt.set()
                with redis_failures_ignored():
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX)

    async def _read(self, pubsub: PubSub) -> None:
        last_heard = time.monotonic()
        pinged = False
        while True:
            message = await pubsub.get_message(timeout=IDLE_PING)
            if message is not None:
                last_heard, pinged = time.monotonic(), False
                if message["type"] == "message":
                    self._apply(message["data"])
            elif time.monotonic() - last_heard >= IDLE_PING:
                if pinged:
                    raise TimeoutError("no answer from Redis to a ping")
                await pubsub.ping()
                pinged = True

    def _apply(self, data: bytes) -> None:
        try:
            kind, origin, ident = data.decode().split(" ")
            target = uuid.UUID(ident)
        except ValueError:
            logger.warning("ignoring a malformed revocation message on %s", CHANNEL)
            return
        if origin == self._origin:
            return  # this process already dropped it
        if kind == _SESSION:
            self._access.drop_session(target)
        elif kind == _USER:
            self._access.drop_user(target)

    def _on_connected(self) -> None:
        self.connected = True
        if self._degraded_logged:
            self._degraded_logged = False
            logger.warning("Redis reachable again: revocations from other instances apply at once")

    def _on_lost(self, exc: BaseException) -> None:
        self.connected = False
        if not self._degraded_logged:
            self._degraded_logged = True
            logger.warning(
                "Redis unreachable (%s): revocations from other instances now take up to %ss "
                "(the database check); reconnecting in the background",
                describe(exc),
                self._ttl,
            )
