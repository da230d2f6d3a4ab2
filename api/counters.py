"""Fixed-window counters in process memory, for the throttle when no Redis is configured.

`limits`' own MemoryStorage starts a task on every hit that walks every key it holds: a cost per
request that grows with the number of clients and accounts counted, which is exactly what a
flood from many addresses inflates. Here a counter is checked for expiry when it is read, and
the expired ones are swept at most once a minute, so a hit costs the same whatever the count.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from limits.aio.storage import Storage

SWEEP_INTERVAL = 60.0


class WindowCounters(Storage):
    """The part of limits' async storage interface that FixedWindowRateLimiter uses."""

    STORAGE_SCHEME = ["keyturn-memory"]

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._clock = clock
        self._counts: dict[str, int] = {}
        self._expires: dict[str, float] = {}
        self._next_sweep = clock() + SWEEP_INTERVAL

    @property
    def base_exceptions(self) -> type[Exception]:
        return ValueError  # nothing here talks to anything that fails

    def __len__(self) -> int:
        return len(self._counts)

    def _live(self, key: str, now: float) -> bool:
        if self._expires.get(key, 0.0) > now:
            return True
        self._counts.pop(key, None)
        self._expires.pop(key, None)
        return False

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL
        for key in [k for k, expires in self._expires.items() if expires <= now]:
            self._live(key, now)

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return self.add(key, expiry, amount)

    def add(self, key: str, expiry: int, amount: int = 1) -> int:
        """`incr` without the await: the count after adding `amount`, in a window of `expiry`
        seconds that begins with the first hit."""
        now = self._clock()
        self._sweep(now)
        if not self._live(key, now):
            self._expires[key] = now + expiry
        count = self._counts.get(key, 0) + amount
        self._counts[key] = count
        return count

    async def get(self, key: str) -> int:
        return self._counts.get(key, 0) if self._live(key, self._clock()) else 0

    async def get_expiry(self, key: str) -> float:
        now = self._clock()
        return self._expires[key] if self._live(key, now) else now

    async def check(self) -> bool:
        return True

    async def reset(self) -> int | None:
        cleared = len(self._counts)
        self._counts.clear()
        self._expires.clear()
        return cleared

    async def clear(self, key: str) -> None:
        self._counts.pop(key, None)
        self._expires.pop(key, None)
