"""What a Redis failure means for an operator: the server away, or Keyturn's credentials refused."""

from __future__ import annotations

from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    AuthorizationError,
    ResponseError,
)

# What Redis answers a client that sent no password, or the wrong one, where it wants one.
_REFUSAL_REPLIES = ("NOAUTH", "WRONGPASS", "HELLO must be called", "Authentication required")


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
