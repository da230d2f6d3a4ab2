"""Password hashing with argon2id, run in worker threads so the event loop never blocks."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from api.errors import bad_input

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128

# OWASP's minimum for argon2id: 19 MiB of memory, two passes, one lane.
OWASP_TIME_COST = 2
OWASP_MEMORY_KIB = 19456
OWASP_PARALLELISM = 1


def validate_password(password: str, field: str = "password") -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise bad_input(field, f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise bad_input(field, f"The password must have at most {MAX_PASSWORD_LENGTH} characters.")
    if "\x00" in password:
        raise bad_input(field, "The password cannot contain NUL characters.")


class Passwords:
    """argon2id on a small thread pool, whose size bounds CPU and memory under a flood."""

    def __init__(
        self,
        concurrency: int = 2,
        *,
        time_cost: int = OWASP_TIME_COST,
        memory_cost: int = OWASP_MEMORY_KIB,
        parallelism: int = OWASP_PARALLELISM,
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=Type.ID
        )
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="argon2")

    @cached_property
    def _dummy_hash(self) -> str:
        # Verified against when the email is unknown, so both failures cost the same.
        return self._hasher.hash("keyturn-dummy-password-for-timing")

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._hasher.hash, password
        )

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when the password matches; an absent hash still costs one verification."""
        target = password_hash if password_hash is not None else self._dummy_hash
        ok = await asyncio.get_running_loop().run_in_executor(
            self._pool, self._verify_sync, target, password
        )
        return ok and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    def _verify_sync(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def warm_up(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, lambda: self._dummy_hash)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
