"""Which errors of a Redis call are Redis going away, and which are bugs to raise."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.redis_trouble import is_redis_failure, redis_failures_ignored

# What uvloop raises for a write on a connection Redis has just closed (seen in a probe's
# Redis restarts under load, where it answered INTERNAL_SERVER_ERROR).
CLOSED = RuntimeError("unable to perform operation on <TCPTransport closed=True reading=False>")


@pytest.mark.parametrize(
    "exc",
    [RedisConnectionError("refused"), RedisTimeoutError(), OSError(111, "refused"), CLOSED],
)
def test_redis_going_away_is_a_failure_to_ride_out(exc: BaseException) -> None:
    assert is_redis_failure(exc)
    with redis_failures_ignored():
        raise exc


@pytest.mark.parametrize("exc", [RuntimeError("a bug"), ValueError("a bug"), KeyError("k")])
def test_anything_else_is_a_bug_and_raised(exc: BaseException) -> None:
    assert not is_redis_failure(exc)
    with pytest.raises(type(exc)), redis_failures_ignored():
        raise exc
