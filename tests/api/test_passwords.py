"""Password hashing: argon2id at OWASP's parameters, constant-cost failures, off the event loop."""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher, Type, extract_parameters

from api.errors import AuthError, ErrorCode
from api.passwords import HASHING_NICENESS, Passwords, validate_password

PASSWORD = "correct horse battery"


@pytest.fixture
async def passwords() -> AsyncIterator[Passwords]:
    passwords = Passwords(concurrency=2)
    await passwords.warm_up()
    try:
        yield passwords
    finally:
        passwords.close()


async def test_hashes_are_argon2id_with_owasp_parameters(passwords: Passwords) -> None:
    password_hash = await passwords.hash(PASSWORD)

    assert password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    parameters = extract_parameters(password_hash)
    assert parameters.type is Type.ID
    assert (parameters.memory_cost, parameters.time_cost, parameters.parallelism) == (19456, 2, 1)
    assert PASSWORD not in password_hash


async def test_each_hash_has_its_own_salt(passwords: Passwords) -> None:
    first, second = await asyncio.gather(passwords.hash(PASSWORD), passwords.hash(PASSWORD))
    assert first != second


async def test_verify_accepts_the_right_password_only(passwords: Passwords) -> None:
    password_hash = await passwords.hash(PASSWORD)

    assert await passwords.verify(password_hash, PASSWORD) is True
    assert await passwords.verify(password_hash, PASSWORD + " ") is False
    assert await passwords.verify(password_hash, PASSWORD.upper()) is False
    assert await passwords.verify(password_hash, "") is False


async def test_verify_against_a_damaged_hash_is_false(passwords: Passwords) -> None:
    assert await passwords.verify("", PASSWORD) is False
    assert await passwords.verify("not-a-hash", PASSWORD) is False
    assert await passwords.verify("$argon2id$v=19$m=19456,t=2,p=1$xx$yy", PASSWORD) is False


async def test_verify_without_a_hash_is_false_even_for_the_dummy_password(
    passwords: Passwords,
) -> None:
    assert await passwords.verify(None, PASSWORD) is False
    assert await passwords.verify(None, "keyturn-dummy-password-for-timing") is False


async def test_verify_without_a_hash_costs_one_real_verification(passwords: Passwords) -> None:
    """An unknown email must take as long as a wrong password: no shortcut, no extra work."""
    password_hash = await passwords.hash(PASSWORD)

    async def fastest_of(runs: int, stored: str | None) -> float:
        # The fastest of several runs is the least disturbed by whatever else the machine does.
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            assert await passwords.verify(stored, "wrong password") is False
            times.append(time.perf_counter() - started)
        return min(times)

    wrong_password = await fastest_of(5, password_hash)
    unknown_user = await fastest_of(5, None)

    assert wrong_password > 0.005, "a verification this fast is no argon2id at OWASP's cost"
    assert 0.5 < unknown_user / wrong_password < 2


async def test_hashing_runs_off_the_event_loop() -> None:
    """While eight hashes run, a task on the loop keeps ticking.

    Hashing on the loop would stall it for the whole batch: no tick at all until the end. The
    bounds are relative to the batch's own duration, so a loaded machine (the CPU shared with
    the hashing threads and other processes) does not make the test flaky.
    """
    passwords = Passwords(concurrency=2)
    ticks: list[float] = []
    hashing = True

    async def ticker() -> None:
        while hashing:
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.01)

    try:
        await passwords.hash(PASSWORD)  # warm the pool
        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(0.02)
        started = time.perf_counter()
        hashes = await asyncio.gather(*(passwords.hash(f"{PASSWORD} {i}") for i in range(8)))
        finished = time.perf_counter()
        hashing = False
        await ticking
    finally:
        passwords.close()

    assert len(set(hashes)) == 8
    elapsed = finished - started
    during = [t for t in ticks if started <= t <= finished]
    assert len(during) >= 5, (elapsed, len(during))
    window = [started, *during, finished]
    gaps = [later - earlier for earlier, later in itertools.pairwise(window)]
    assert max(gaps) < elapsed / 3, (
        f"the event loop stalled for {max(gaps) * 1000:.0f} ms of {elapsed * 1000:.0f} ms"
    )


async def test_the_first_verification_without_a_hash_runs_off_the_event_loop() -> None:
    """Before warm_up, the dummy hash is made on first use: in a worker, not on the loop."""
    # Costlier than OWASP's parameters, so that a stall would stand out from timer noise.
    passwords = Passwords(concurrency=1, time_cost=4, memory_cost=65536)
    ticks: list[float] = []
    verifying = True

    async def ticker() -> None:
        while verifying:
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.01)

    try:
        started = time.perf_counter()
        await passwords.hash(PASSWORD)
        single = time.perf_counter() - started
        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(0.02)
        assert await passwords.verify(None, PASSWORD) is False
        verifying = False
        await ticking
    finally:
        passwords.close()

    limit = min(0.1, single / 2)
    gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
    assert max(gaps) < limit, f"the event loop stalled for {max(gaps) * 1000:.0f} ms"


async def test_hashing_uses_at_most_the_configured_number_of_threads() -> None:
    passwords = Passwords(concurrency=2)
    try:
        await asyncio.gather(*(passwords.hash(f"{PASSWORD} {i}") for i in range(6)))
        workers = [t for t in threading.enumerate() if t.name.startswith("argon2")]
        assert 1 <= len(workers) <= 2
    finally:
        passwords.close()


def niceness(thread: threading.Thread) -> int:
    """A thread's nice value, as the kernel reports it (field 19 of /proc/self/task/TID/stat)."""
    stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[16])


@pytest.mark.skipif(sys.platform != "linux", reason="thread priorities are set on Linux only")
async def test_hashing_threads_run_at_a_lower_priority_than_the_event_loop() -> None:
    passwords = Passwords(concurrency=2)
    try:
        await asyncio.gather(*(passwords.hash(f"{PASSWORD} {i}") for i in range(4)))
        workers = [t for t in threading.enumerate() if t.name.startswith("argon2")]
        assert workers
        loop_thread = niceness(threading.current_thread())
        assert all(niceness(t) == loop_thread + HASHING_NICENESS for t in workers)
    finally:
        passwords.close()


async def test_a_hash_with_weaker_parameters_needs_rehashing(passwords: Passwords) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1, type=Type.ID)
    assert passwords.needs_rehash(weak.hash(PASSWORD))
    assert not passwords.needs_rehash(await passwords.hash(PASSWORD))
    assert await passwords.verify(weak.hash(PASSWORD), PASSWORD) is True


PHRASE_128 = (
    "quartz kestrel lantern orbit velvet thimble crane mosaic harbor juniper falcon "
    "pepper violin glacier saffron meadow tundra bicyc"
)


def test_a_phrase_of_128_characters_is_accepted() -> None:
    assert len(PHRASE_128) == 128
    validate_password(PHRASE_128)


@pytest.mark.parametrize(
    "password",
    [
        "Kx9!vQ2",
        PHRASE_128 + "s",
        "quartz kestrel\x00lantern orbit velvet",
        "quartz kestrel\udcfflantern orbit velvet",  # a byte that was not UTF-8, on a command line
    ],
)
def test_a_password_too_short_too_long_with_nul_or_not_text_is_refused(password: str) -> None:
    with pytest.raises(AuthError) as exc:
        validate_password(password, field="newPassword")
    assert exc.value.code is ErrorCode.BAD_USER_INPUT
    assert exc.value.extensions["field"] == "newPassword"
