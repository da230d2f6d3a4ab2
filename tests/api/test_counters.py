"""The throttle's in-memory counters: fixed windows, lazy expiry, a bounded sweep."""

from __future__ import annotations

from limits import RateLimitItemPerMinute
from limits.aio.strategies import FixedWindowRateLimiter

from api.counters import SWEEP_INTERVAL, WindowCounters


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_window_counts_then_starts_again_once_it_has_passed() -> None:
    clock = Clock()
    counters = WindowCounters(clock)
    assert [await counters.incr("a", 60) for _ in range(3)] == [1, 2, 3]
    assert await counters.get("a") == 3
    assert await counters.get_expiry("a") == clock.now + 60
    clock.now += 59.9
    assert await counters.incr("a", 60) == 4  # the same window: its end does not move
    clock.now += 0.1
    assert await counters.get("a") == 0
    assert await counters.incr("a", 60) == 1
    assert await counters.get_expiry("a") == clock.now + 60


async def test_keys_are_counted_apart_and_cleared_alone() -> None:
    counters = WindowCounters(Clock())
    await counters.incr("a", 60, amount=2)
    await counters.incr("b", 60)
    await counters.clear("a")
    assert (await counters.get("a"), await counters.get("b")) == (0, 1)
    assert await counters.reset() == 1
    assert await counters.get("b") == 0


async def test_expired_counters_are_swept_without_being_read_again() -> None:
    clock = Clock()
    counters = WindowCounters(clock)
    for i in range(1000):
        await counters.incr(f"client-{i}", 10)
    assert len(counters) == 1000
    clock.now += SWEEP_INTERVAL  # all expired; one more hit triggers the sweep
    await counters.incr("late", 10)
    assert len(counters) == 1


async def test_the_limiter_refuses_past_the_limit_on_these_counters() -> None:
    limiter = FixedWindowRateLimiter(WindowCounters(Clock()))
    item = RateLimitItemPerMinute(3)
    assert [await limiter.hit(item, "ip") for _ in range(4)] == [True, True, True, False]
    stats = await limiter.get_window_stats(item, "ip")
    assert stats.remaining == 0
