"""Two real instances sharing PostgreSQL and Redis: a revocation on one bites on the other.

With Redis the other instance drops its cached check at once (well under the 1 s cache TTL);
without it, the TTL-bounded database check still refuses the token within 1 s.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORD
from tests.processes import wait_until
from tests.scale.cluster import Instance, RedisServer
from tests.scale.conftest import create_admin, start_pair, start_redis

ME = "{ me { id } }"
REGISTER = """
mutation ($e: String!, $p: String!) {
  register(input: {email: $e, password: $p, refreshTokenDelivery: BODY}) {
    accessToken refreshToken user { id }
  }
}
"""
LOGIN = """
mutation ($e: String!, $p: String!) {
  login(input: {email: $e, password: $p, refreshTokenDelivery: BODY}) {
    accessToken refreshToken user { id }
  }
}
"""
LOGOUT = "mutation ($t: String) { logout(refreshToken: $t) }"
LOGOUT_ALL = "mutation { logoutAll }"
REVOKE_USER = "mutation ($id: ID!) { revokeUserSessions(userId: $id) { tokenVersion } }"

# "At once": a broadcast arrives in about a millisecond; the TTL path would need up to 1 s.
AT_ONCE = 0.2
CACHE_TTL = 1.0
POLL = 0.01
TTL_SLACK = 0.3


@dataclass
class Cluster:
    a: Instance
    b: Instance
    redis: RedisServer
    database_url: str


def codes(body: dict[str, Any]) -> list[str]:
    return [error.get("extensions", {}).get("code") for error in body.get("errors") or []]


def register(instance: Instance) -> dict[str, Any]:
    email = f"user-{uuid.uuid4().hex[:8]}@example.com"
    body = instance.gql(REGISTER, {"e": email, "p": PASSWORD})
    assert not codes(body), body
    payload: dict[str, Any] = body["data"]["register"]
    payload["email"] = email
    return payload


def login(instance: Instance, email: str) -> dict[str, Any]:
    body = instance.gql(LOGIN, {"e": email, "p": PASSWORD})
    assert not codes(body), body
    payload: dict[str, Any] = body["data"]["login"]
    return payload


def accepted(instance: Instance, token: str) -> bool:
    body = instance.gql(ME, token=token)
    assert codes(body) in ([], ["TOKEN_REVOKED"]), body
    return not codes(body)


def seconds_until_refused(instance: Instance, token: str, since: float, limit: float) -> float:
    """Poll `instance` until it refuses `token`; the time from `since` to the refused request."""
    return polls_until_refused(instance, token, since, limit)[1]


def polls_until_refused(
    instance: Instance, token: str, since: float, limit: float
) -> tuple[float, float]:
    """When, after `since`, the last accepting and the first refused requests were sent."""
    last_accepted = 0.0
    while True:
        sent = time.monotonic()
        if not accepted(instance, token):
            return last_accepted, sent - since
        last_accepted = sent - since
        if last_accepted > limit:
            pytest.fail(f"{instance.name} still accepts the token after {limit}s")
        time.sleep(POLL)


def assert_refused_within_ttl(instance: Instance, token: str, revoked: float) -> None:
    """No request sent TTL after the revocation began is accepted; one soon after is refused.

    The slack covers the poll interval and a loaded machine's HTTP round trip, nothing else.
    """
    last_accepted, refused = polls_until_refused(instance, token, revoked, 2 * CACHE_TTL)
    assert last_accepted < CACHE_TTL
    assert refused < CACHE_TTL + TTL_SLACK


def stop_all(*parts: Instance | RedisServer) -> None:
    for part in parts:
        part.stop() if isinstance(part, Instance) else part.shutdown()


@pytest.fixture(scope="module")
def cluster(scale_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    redis = start_redis()
    try:
        a, b = start_pair(scale_database, redis.url, tmp_path_factory.mktemp("cluster"))
    except BaseException:
        redis.shutdown()
        raise
    try:
        yield Cluster(a, b, redis, scale_database)
    finally:
        stop_all(a, b, redis)


def test_a_session_revoked_on_one_instance_is_refused_by_the_other_at_once(
    cluster: Cluster,
) -> None:
    phone = register(cluster.a)
    laptop = login(cluster.b, phone["email"])
    # B has just checked (and cached) the phone's session: only a broadcast can end it sooner
    # than the cache TTL.
    assert accepted(cluster.b, phone["accessToken"])

    assert cluster.a.gql(LOGOUT, {"t": phone["refreshToken"]})["data"] == {"logout": True}
    returned = time.monotonic()

    assert seconds_until_refused(cluster.b, phone["accessToken"], returned, CACHE_TTL) < AT_ONCE
    assert accepted(cluster.b, laptop["accessToken"])
    assert not accepted(cluster.a, phone["accessToken"])


def test_logout_all_on_one_instance_ends_every_session_on_the_other_at_once(
    cluster: Cluster,
) -> None:
    phone = register(cluster.a)
    laptop = login(cluster.a, phone["email"])
    bystander = register(cluster.a)
    for session in (phone, laptop, bystander):
        assert accepted(cluster.b, session["accessToken"])

    assert cluster.a.gql(LOGOUT_ALL, token=phone["accessToken"])["data"] == {"logoutAll": True}
    returned = time.monotonic()

    for session in (phone, laptop):
        assert seconds_until_refused(cluster.b, session["accessToken"], returned, CACHE_TTL) < (
            AT_ONCE
        )
    assert accepted(cluster.b, bystander["accessToken"])


def test_an_admin_revoking_a_users_sessions_on_one_instance_bites_on_the_other_at_once(
    cluster: Cluster,
) -> None:
    admin_email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    create_admin(cluster.database_url, admin_email)
    admin = login(cluster.b, admin_email)
    victim = register(cluster.a)
    assert accepted(cluster.a, victim["accessToken"])

    body = cluster.b.gql(REVOKE_USER, {"id": victim["user"]["id"]}, token=admin["accessToken"])
    assert body["data"] == {"revokeUserSessions": {"tokenVersion": 1}}, body
    returned = time.monotonic()

    assert seconds_until_refused(cluster.a, victim["accessToken"], returned, CACHE_TTL) < AT_ONCE
    assert accepted(cluster.a, admin["accessToken"])


def test_without_redis_instances_fall_back_to_the_cache_ttl_and_recover(
    scale_database: str, tmp_path: Path
) -> None:
    redis = start_redis()
    try:
        a, b = start_pair(scale_database, redis.url, tmp_path)
    except BaseException:
        redis.shutdown()
        raise
    try:
        _degrade_and_recover(a, b, redis)
    finally:
        stop_all(a, b, redis)


def _degrade_and_recover(a: Instance, b: Instance, redis: RedisServer) -> None:
    phone = register(a)
    laptop = login(a, phone["email"])
    tablet = register(a)
    redis.shutdown()
    wait_until(lambda: "Redis unreachable" in b.log(), 10, "the degraded-mode log line")

    # Requests still answer, from the database check.
    for instance in (a, b):
        for session in (phone, laptop, tablet):
            assert accepted(instance, session["accessToken"])

    # A revocation still bites on the other instance within the cache TTL.
    started = time.monotonic()
    assert a.gql(LOGOUT, {"t": phone["refreshToken"]})["data"] == {"logout": True}
    assert_refused_within_ttl(b, phone["accessToken"], started)
    # And so does a tokenVersion bump.
    assert accepted(b, laptop["accessToken"])
    started = time.monotonic()
    assert a.gql(LOGOUT_ALL, token=laptop["accessToken"])["data"] == {"logoutAll": True}
    assert_refused_within_ttl(b, laptop["accessToken"], started)
    assert accepted(b, tablet["accessToken"])

    # Said once, not once per request or per revocation; and nothing failed.
    for instance in (a, b):
        assert instance.log().count("Redis unreachable") == 1, instance.log()
        assert "Traceback" not in instance.log()
    assert a.log().count("cannot publish revocations") == 1, a.log()

    # Redis comes back: the instances resubscribe on their own and revocations bite at once again.
    redis.start()
    wait_until(lambda: "Redis reachable again" in b.log(), 15, "B's resubscription")
    tablet_b = login(b, tablet["email"])
    assert accepted(a, tablet_b["accessToken"])
    assert b.gql(LOGOUT, {"t": tablet_b["refreshToken"]})["data"] == {"logout": True}
    returned = time.monotonic()
    assert seconds_until_refused(a, tablet_b["accessToken"], returned, CACHE_TTL) < AT_ONCE
