"""With KEYTURN_REDIS_URL, every instance shares the counters; without Redis, no throttled answer.

Two apps in one process cannot both register tortoise, so the second instance here is a second
Throttle built from the same settings: exactly what another process would build.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from api.clients import ClientInfo
from api.errors import AuthError, ErrorCode
from api.ratelimit import Throttle, deployment_key
from tests.conftest import (
    PASSWORD,
    REDIS_HOST,
    REDIS_PORT,
    REDIS_URL,
    AppFactory,
    Harness,
    delete_redis_keys,
    port_open,
    require_service,
)
from tests.scale.cluster import RedisServer
from tests.security.conftest import REFRESH, attempt, retry_after
from tests.tcpproxy import TcpProxy

WRONG = "not the password at all"
ELSEWHERE = ClientInfo(ip_address="198.51.100.200", user_agent="instance-b")


@pytest.fixture
async def redis_url(database_url: str) -> AsyncIterator[str]:
    require_service("Redis", port_open(REDIS_HOST, REDIS_PORT))
    yield REDIS_URL
    # The counters of this test's deployment (keyed by its database) go with it.
    await delete_redis_keys(f"keyturn:{deployment_key(database_url)}:*")


@pytest.fixture
async def instance_a(app_factory: AppFactory, redis_url: str) -> Harness:
    api = await app_factory(
        redis_url=redis_url, login_max_failures_per_account=3, refresh_max_per_ip=4
    )
    await api.create_user()
    return api


@asynccontextmanager
async def another_instance(instance_a: Harness, **settings: Any) -> AsyncIterator[Throttle]:
    """The throttle another process of instance A's deployment would build, with `settings`
    changed (a limit changed on a rolling restart, say)."""
    throttle = Throttle(instance_a.settings.model_copy(update=settings), instance_a.clock)
    try:
        yield throttle
    finally:
        await throttle.close()


@pytest.fixture
async def instance_b(instance_a: Harness) -> AsyncIterator[Throttle]:
    async with another_instance(instance_a) as throttle:
        yield throttle


async def test_failures_on_one_instance_lock_the_account_on_the_other(
    instance_a: Harness, instance_b: Throttle
) -> None:
    for _ in range(3):
        assert (await attempt(instance_a, "user@example.com", WRONG)).codes == [
            "INVALID_CREDENTIALS"
        ]

    with pytest.raises(AuthError) as refused:
        async with instance_b.login(" USER@example.com", ELSEWHERE):
            pytest.fail("the other instance let a locked account try again")
    assert refused.value.code is ErrorCode.RATE_LIMITED
    assert 0 < refused.value.extensions["retryAfter"] <= 900


async def test_failures_on_the_other_instance_count_here(
    instance_a: Harness, instance_b: Throttle
) -> None:
    for _ in range(3):
        with pytest.raises(AuthError):
            async with instance_b.login("user@example.com", ELSEWHERE):
                raise AuthError(ErrorCode.INVALID_CREDENTIALS)

    locked = await attempt(instance_a, "user@example.com", PASSWORD)
    assert retry_after(locked) > 0


async def test_per_address_counts_are_shared(instance_a: Harness, instance_b: Throttle) -> None:
    here = ClientInfo(ip_address="127.0.0.1")
    for _ in range(4):
        await instance_b.refresh(here)

    refused = await instance_a.gql(REFRESH, {"t": "whatever"})
    assert retry_after(refused) > 0


async def test_a_changed_limit_counts_on_from_where_the_old_one_left(
    instance_a: Harness,
) -> None:
    # Instance B is the same deployment after KEYTURN_REFRESH_MAX_PER_IP went from 4 to 6 on a
    # rolling restart: both count on one counter, each by its own limit.
    here = ClientInfo(ip_address="127.0.0.1")
    async with another_instance(instance_a, refresh_max_per_ip=6) as raised:
        for _ in range(4):
            await raised.refresh(here)
        assert retry_after(await instance_a.gql(REFRESH, {"t": "whatever"})) > 0  # the 5th
        await raised.refresh(here)  # the 6th
        with pytest.raises(AuthError) as refused:
            await raised.refresh(here)
        assert refused.value.code is ErrorCode.RATE_LIMITED


async def test_a_lowered_failure_limit_applies_to_the_failures_already_counted(
    instance_a: Harness,
) -> None:
    # Lowering KEYTURN_LOGIN_MAX_FAILURES_PER_ACCOUNT in the middle of an attack must not hand
    # the attacker a fresh budget.
    for _ in range(2):
        assert (await attempt(instance_a, "user@example.com", WRONG)).codes == [
            "INVALID_CREDENTIALS"
        ]
    async with another_instance(instance_a, login_max_failures_per_account=2) as lowered:
        with pytest.raises(AuthError) as refused:
            async with lowered.login("user@example.com", ELSEWHERE):
                pytest.fail("a lowered limit let the account try again")
        assert refused.value.code is ErrorCode.RATE_LIMITED


async def test_a_success_on_either_instance_clears_the_account(
    instance_a: Harness, instance_b: Throttle
) -> None:
    for _ in range(2):
        await attempt(instance_a, "user@example.com", WRONG)
    async with instance_b.login("user@example.com", ELSEWHERE):
        pass  # the password was right over there
    for _ in range(2):
        await attempt(instance_a, "user@example.com", WRONG)
    assert not (await attempt(instance_a, "user@example.com", PASSWORD)).errors


@pytest.mark.parametrize(
    "no_verdict",
    [AuthError(ErrorCode.SERVICE_UNAVAILABLE), RuntimeError("a bug"), asyncio.CancelledError()],
    ids=["unavailable", "bug", "cancelled"],
)
async def test_attempts_that_ended_with_no_verdict_are_taken_back_in_redis(
    instance_a: Harness, instance_b: Throttle, no_verdict: BaseException
) -> None:
    # The shared counters give back what such an attempt reserved, as the in-process ones do
    # (tests/schema/test_outage.py): the failure and the lockout level it raised.
    for _ in range(2):
        assert (await attempt(instance_a, "user@example.com", WRONG)).codes == [
            "INVALID_CREDENTIALS"
        ]
    for _ in range(6):  # each would have been the failure that fills the window
        with pytest.raises(type(no_verdict)):
            async with instance_b.login("user@example.com", ELSEWHERE):
                raise no_verdict

    assert (await attempt(instance_a, "user@example.com", WRONG)).codes == ["INVALID_CREDENTIALS"]
    locked = await attempt(instance_a, "user@example.com", PASSWORD)
    assert locked.codes == ["RATE_LIMITED"]
    # The first lockout of the day, one window long: no level was left raised.
    assert 0 < retry_after(locked) <= instance_a.settings.login_failure_window


async def test_a_proven_password_stands_when_the_store_fails_before_it_is_forgiven(
    instance_a: Harness, redis_url: str
) -> None:
    # The attempt's work (a login's session, its audit event) has committed when the store
    # is told to forget the account's failures. A store lost at that moment answered
    # SERVICE_UNAVAILABLE: the client lost its tokens, and the session stayed behind unused.
    proxy = TcpProxy(REDIS_HOST, REDIS_PORT)
    await proxy.start()
    through_proxy = redis_url.replace(f":{REDIS_PORT}/", f":{proxy.port}/")
    try:
        async with (
            another_instance(instance_a, redis_url=through_proxy) as throttle,
            throttle.login("user@example.com", ELSEWHERE),
        ):
            await proxy.stop()  # the password was right; then Redis goes away
    finally:
        await proxy.stop()
    # The failure it reserved stays counted, until the next right password clears it.
    for _ in range(2):
        assert (await attempt(instance_a, "user@example.com", WRONG)).codes == [
            "INVALID_CREDENTIALS"
        ]
    assert retry_after(await attempt(instance_a, "user@example.com", PASSWORD)) > 0


async def test_an_unreachable_redis_answers_service_unavailable(
    app_factory: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on port 1: every Redis call is refused at once.
    api = await app_factory(redis_url="redis://127.0.0.1:1/0")
    await api.create_user()

    for _ in range(3):
        refused = await attempt(api, "user@example.com", PASSWORD)
        assert refused.codes == ["SERVICE_UNAVAILABLE"]
        # Like the database's outage: an id to find the request by in the log.
        assert len(refused.errors[0]["extensions"]["requestId"]) == 32
    register = await api.gql(
        'mutation { register(input: {email: "n@example.com", password: "a fine password"})'
        " { accessToken } }"
    )
    assert register.codes == ["SERVICE_UNAVAILABLE"]
    assert (await api.gql(REFRESH, {"t": "x"})).codes == ["SERVICE_UNAVAILABLE"]
    # Said once in the log, not once per request.
    warnings = [r for r in caplog.records if "rate-limit store cannot be reached" in r.message]
    assert len(warnings) == 1
    # What needs no throttle still works.
    assert (await api.gql("{ __typename }")).data == {"__typename": "Query"}


@pytest.mark.parametrize("credentials", ["", ":not-the-password@"], ids=["none", "wrong"])
async def test_refused_redis_credentials_are_named_as_a_setting_to_fix(
    app_factory: AppFactory, caplog: pytest.LogCaptureFixture, credentials: str
) -> None:
    # Logged as "Redis unreachable" / "cannot be reached (AuthenticationError)": a setting to
    # fix read as an outage to wait out.
    require_service("redis-server", shutil.which("redis-server") is not None)
    server = RedisServer(password="the-redis-password")
    server.start()
    try:
        api = await app_factory(redis_url=f"redis://{credentials}127.0.0.1:{server.port}/0")
        await api.create_user()
        assert (await attempt(api, "user@example.com", PASSWORD)).codes == ["SERVICE_UNAVAILABLE"]
    finally:
        server.shutdown()
    said = [r.getMessage() for r in caplog.records if r.name.startswith("keyturn")]
    named = [line for line in said if "refused the password or user in KEYTURN_REDIS_URL" in line]
    assert {line.split(" (")[0] for line in named} == {
        "Redis unreachable",
        "rate-limit store cannot be reached",
    }, said
    assert not any("not-the-password" in line for line in said)
