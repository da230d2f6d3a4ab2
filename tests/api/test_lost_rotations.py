"""The memory of rotations whose answer was lost: kept for its window, shared through Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from api.lost_rotations import LOST_WINDOW, LostRotations
from tests.conftest import FakeClock, port_open, require_service

REDIS_HOST = os.environ.get("KEYTURN_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("KEYTURN_TEST_REDIS_PORT", "6379"))
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


@pytest.fixture
async def namespace() -> AsyncIterator[str]:
    require_service("Redis", port_open(REDIS_HOST, REDIS_PORT))
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(f"keyturn:{name}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def test_a_lost_rotation_is_recognised_by_another_process_through_redis(
    namespace: str, clock: FakeClock
) -> None:
    session, presented, written = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    here = LostRotations(clock, REDIS_URL, namespace)
    here.remember(session, presented, written)
    await here.close()  # its Redis write is done

    elsewhere = LostRotations(clock, REDIS_URL, namespace)
    assert await elsewhere.written_for(session, presented) == written
    assert await elsewhere.written_for(session, uuid.uuid4()) is None  # another token
    assert await elsewhere.written_for(uuid.uuid4(), presented) is None  # another session
    # Without Redis, only the process that failed knows.
    alone = LostRotations(clock, None, namespace)
    assert await alone.written_for(session, presented) is None


async def test_a_lost_rotation_is_forgotten_after_its_window(clock: FakeClock) -> None:
    session, presented, written = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    lost = LostRotations(clock, None, "unused")
    lost.remember(session, presented, written)
    clock.advance(LOST_WINDOW)
    assert await lost.written_for(session, presented) == written
    clock.advance(1)
    assert await lost.written_for(session, presented) is None


async def test_a_later_rotation_of_the_session_replaces_the_earlier(clock: FakeClock) -> None:
    session = uuid.uuid4()
    first, second = (uuid.uuid4(), uuid.uuid4()), (uuid.uuid4(), uuid.uuid4())
    lost = LostRotations(clock, None, "unused")
    lost.remember(session, *first)
    lost.remember(session, *second)
    assert await lost.written_for(session, first[0]) is None
    assert await lost.written_for(session, second[0]) == second[1]
