"""Password rules, and argon2id hashing in worker threads so the event loop never blocks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn import zxcvbn

from api.clients import is_unicode_text
from api.errors import AuthError, ErrorCode

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128
# zxcvbn's scores run 0 to 4; 3 means about 10^8 guesses or more, far beyond what the login
# throttle lets anyone try online, and out of reach of the breach lists zxcvbn ships.
MIN_STRENGTH_SCORE = 3
# zxcvbn's matching grows quadratically with the length and runs on the event loop; the first
# 48 characters tell a weak password from a strong one (about 60 ms at worst).
STRENGTH_CHECKED_LENGTH = 48

# OWASP's minimum for argon2id: 19 MiB of memory, two passes, one lane.
OWASP_TIME_COST = 2
OWASP_MEMORY_KIB = 19456
OWASP_PARALLELISM = 1

# Hashing threads run this much nicer than the event loop (Linux only: elsewhere a thread's
# priority cannot be set on its own). A login flood keeps both cores busy hashing; the event
# loop's thread then still gets a core whenever it has work, so other requests wait on
# hashing no longer than a scheduler tick.
HASHING_NICENESS = 10

T = TypeVar("T")


def _lower_thread_priority() -> None:
    """Runs in each new hashing thread: makes that thread, and only it, nicer."""
    if sys.platform != "linux":
        return
    # A sandbox that forbids it leaves hashing working, only without the lower priority.
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)


def _refuse(field: str, reason: str, message: str) -> AuthError:
    return AuthError(ErrorCode.BAD_USER_INPUT, message, field=field, reason=reason)


def validate_password(
    password: str, field: str = "password", user_inputs: Iterable[str] = ()
) -> None:
    """Refuse a password that is too short, too long, or easy to guess; the reason says which.

    Length counts characters (code points), so any script is welcome and nothing is truncated.
    `user_inputs` (the email, say) count as known words: a password built on them is weak.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise _refuse(
            field, "too_short", f"The password must have at least {MIN_PASSWORD_LENGTH} characters."
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise _refuse(
            field, "too_long", f"The password must have at most {MAX_PASSWORD_LENGTH} characters."
        )
    if "\x00" in password:
        raise _refuse(field, "forbidden_character", "The password cannot contain NUL characters.")
    if not is_unicode_text(password):
        raise _refuse(field, "forbidden_character", "The password must be Unicode text.")
    words = [word for value in user_inputs for word in _words_of(value)]
    estimate = zxcvbn(password[:STRENGTH_CHECKED_LENGTH], user_inputs=words)
    if estimate["score"] < MIN_STRENGTH_SCORE:
        warning = estimate["feedback"]["warning"]
        raise _refuse(
            field,
            "too_common",
            " ".join(
                part
                for part in (
                    "This password is too easy to guess.",
                    warning,
                    "Try a longer phrase of unrelated words.",
                )
                if part
            ),
        )


def _words_of(value: str) -> list[str]:
    """An email and its parts, so that neither 'maryjones2024' nor 'acmewidgets!' passes."""
    value = value.strip().lower()
    local, _, domain = value.partition("@")
    parts = [value, local, *re.split(r"[^\w]+", local), *re.split(r"[^\w]+", domain)]
    parts.append(re.sub(r"[^\w]+", "", local))
    return [part for part in dict.fromkeys(parts) if len(part) >= 3]


class PasswordsBusy(AuthError):
    """More hashing work is waiting than the configured queue allows."""

    def __init__(self) -> None:
        super().__init__(ErrorCode.RATE_LIMITED, retryAfter=1)


class Passwords:
    """argon2id on a small thread pool, whose size bounds CPU and memory under a flood.

    The pool's own queue has no bound, so work is admitted here first: at most `concurrency`
    jobs run and `queue` more wait; anything beyond is refused at once with PasswordsBusy
    instead of piling up passwords in memory.
    """

    def __init__(
        self,
        concurrency: int = 2,
        *,
        queue: int = 64,
        time_cost: int = OWASP_TIME_COST,
        memory_cost: int = OWASP_MEMORY_KIB,
        parallelism: int = OWASP_PARALLELISM,
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=Type.ID
        )
        self._pool = ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="argon2", initializer=_lower_thread_priority
        )
        self._max_pending = concurrency + queue
        self._pending = 0

    @property
    def pending(self) -> int:
        """Jobs running or waiting for a worker right now."""
        return self._pending

    @cached_property
    def _dummy_hash(self) -> str:
        # Verified against when the email is unknown, so both failures cost the same.
        return self._hasher.hash("keyturn-dummy-password-for-timing")

    async def _run(self, work: Callable[..., T], *args: str | None) -> T:
        # Only the event loop's thread touches the counter: no lock needed.
        if self._pending >= self._max_pending:
            raise PasswordsBusy
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, work, *args)
        finally:
            self._pending -= 1

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when the password matches; an absent hash still costs one verification."""
        ok = await self._run(self._verify_sync, password_hash, password)
        return ok and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    def _verify_sync(self, password_hash: str | None, password: str) -> bool:
        # In the worker: before warm_up, making the dummy hash costs a whole hash, which must
        # not stall the event loop.
        target = password_hash if password_hash is not None else self._dummy_hash
        try:
            return self._hasher.verify(target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def warm_up(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, lambda: self._dummy_hash)
        # zxcvbn loads its word lists on first use; pay that at start-up, not in a request.
        zxcvbn("warm-up")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
