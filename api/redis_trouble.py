"""Redis failures: which errors are Redis going away (not a bug), and what one means for an
operator: the server away, or Keyturn's credentials refused."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    AuthorizationError,
    RedisError,
    ResponseError,
)

# uvloop's error for a write on a connection Redis has just closed (a restart under load): a
# RuntimeError, outside redis-py's own exceptions.
_CLOSED_TRANSPORT = "unable to perform operation on"

# What Redis answers a client that sent no password, or the wrong one, where it wants one.
_REFUSAL_REPLIES = ("NOAUTH", "WRONGPASS", "HELLO must be called", "Authentication required")


def is_redis_failure(exc: BaseException) -> bool:
    """Whether a Redis call ended because Redis is away, slow, refusing or closing on us: a
    failure to ride out (or report), not a bug to raise."""
    if isinstance(exc, RedisError | OSError | TimeoutError):
        return True
    return isinstance(exc, RuntimeError) and _CLOSED_TRANSPORT in str(exc)


@contextlib.contextmanager
def redis_failures_ignored() -> Iterator[None]:
    """`contextlib.suppress` for exactly the failures of `is_redis_failure`."""
    try:
        yield
    except Exception as exc:
        if not is_redis_failure(exc):
            raise


def credentials_refused(exc: BaseException) -> bool:
    """True when Redis is up but refuses the password or user in KEYTURN_REDIS_URL: a setting to
    fix, which waiting will not."""
    if isinstance(
        exc, AuthenticationError | AuthenticationWrongNumberOfArgsError | AuthorizationError
    ):
        return True
    return isinstance(exc, ResponseError) and any(text in str(exc) for text in _REFUSAL_REPLIES)


def describe(exc: BaseException) -> str:
    """The failure in the words of a log line: its cause, and whether it is a setting to fix."""
    text = str(exc) or type(exc).__name__
    if credentials_refused(exc):
        return f"Redis refused the password or user in KEYTURN_REDIS_URL: {text}"
    return text
