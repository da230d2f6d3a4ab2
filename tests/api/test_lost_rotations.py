"""The memory of rotations whose answer was lost: kept for its window, shared through Redis,
used up by the answer it makes possible."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from api.lost_rotations import LOST_WINDOW, LostRotations
from tests.conftest import (
    REDIS_HOST,
    REDIS_PORT,
    REDIS_URL,
    FakeClock,
    delete_redis_keys,
    port_open,
    require_service,
)

GRACE = 10


@pytest.fixture
async def namespace() -> AsyncIterator[str]:
    require_service("Redis", port_open(REDIS_HOST, REDIS_PORT))
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    await delete_redis_keys(f"keyturn:{name}:*")


def ids(count: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(count)]


async def test_a_lost_rotation_is_recognised_by_another_process_through_redis(
    namespace: str, clock: FakeClock
) -> None:
    session, presented, written = ids(3)
    here = LostRotations(clock, REDIS_URL, namespace, GRACE)
    here.remember(session, presented, written)
    await here.close()  # after its Redis write

    elsewhere = LostRotations(clock, REDIS_URL, namespace, GRACE)
    try:
        assert await elsewhere.written_for(session, presented) == {written}
        assert await elsewhere.written_for(session, uuid.uuid4()) == set()  # another token
        assert await elsewhere.written_for(uuid.uuid4(), presented) == set()  # another session
    finally:
        await elsewhere.close()
    # Without Redis, only the process that failed knows.
    alone = LostRotations(clock, None, namespace, GRACE)
    assert await alone.written_for(session, presented) == set()


async def test_what_this_process_remembers_does_not_hide_what_redis_has(
    namespace: str, clock: FakeClock
) -> None:
    session, presented, first, second = ids(4)
    here = LostRotations(clock, REDIS_URL, namespace, GRACE)
    there = LostRotations(clock, REDIS_URL, namespace, GRACE)
    try:
        here.remember(session, presented, first)
        there.remember(session, presented, second)
        await here.flush()
        await there.flush()
        assert await here.written_for(session, presented) == {first, second}
    finally:
        await here.close()
        await there.close()


async def test_every_failed_attempt_from_one_token_is_remembered(clock: FakeClock) -> None:
    # The first attempt committed; the client's retry during the outage failed again and
    # attempted a rotation of its own, which replaced the first in the memory: after the
    # outage, the retry that should have found it was judged reuse.
    session, presented, committed, retried = ids(4)
    lost = LostRotations(clock, None, "unused", GRACE)
    lost.remember(session, presented, committed)
    lost.remember(session, presented, retried)
    assert await lost.written_for(session, presented) == {committed, retried}


async def test_a_lost_rotation_is_forgotten_after_its_window(clock: FakeClock) -> None:
    session, presented, written = ids(3)
    lost = LostRotations(clock, None, "unused", GRACE)
    lost.remember(session, presented, written)
    clock.advance(LOST_WINDOW)
    assert await lost.written_for(session, presented) == {written}
    clock.advance(1)
    assert await lost.written_for(session, presented) == set()


@pytest.mark.parametrize("redis", [False, True], ids=["memory", "redis"])
async def test_its_answer_uses_it_up_past_the_grace_window(
    namespace: str, clock: FakeClock, redis: bool
) -> None:
    # Else a copy of the token, replayed within the hour after the client's retry, got the
    # current pair silently, where it is reuse.
    session, presented, written = ids(3)
    lost = LostRotations(clock, REDIS_URL if redis else None, namespace, GRACE)
    try:
        lost.remember(session, presented, written)
        await lost.flush()
        lost.handed_back(session, presented)
        await lost.flush()
        assert await lost.written_for(session, presented) == {written}  # a retry: grace
        if redis:
            client = Redis.from_url(REDIS_URL)
            key = f"keyturn:{namespace}:lost-rotation:{session}:{presented}"
            assert 0 < await client.ttl(key) <= GRACE
            await client.aclose()
        else:
            clock.advance(GRACE + 1)
            assert await lost.written_for(session, presented) == set()
    finally:
        await lost.close()


async def test_a_grace_window_of_zero_tolerates_no_lost_rotation(clock: FakeClock) -> None:
    session, presented, written = ids(3)
    lost = LostRotations(clock, None, "unused", 0)
    lost.remember(session, presented, written)
    assert await lost.written_for(session, presented) == set()


async def test_an_answer_given_by_another_process_uses_it_up_here_too(namespace: str) -> None:
    # Process A failed the rotation; the client's retry reached B, which answered and
    # shortened the record in Redis; A's own memory, an hour long, still answered a replay.
    clock = FakeClock()
    session, presented, written = ids(3)
    here = LostRotations(clock, REDIS_URL, namespace, 1)
    there = LostRotations(clock, REDIS_URL, namespace, 1)
    try:
        here.remember(session, presented, written)
        await here.flush()
        assert await there.written_for(session, presented) == {written}
        there.handed_back(session, presented)
        await there.flush()
        await asyncio.sleep(2.1)  # Redis keeps time itself: past the one-second grace
        assert await here.written_for(session, presented) == set()
    finally:
        await here.close()
        await there.close()
