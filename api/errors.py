"""Business errors: values with a contract code, raised by services, rendered in one place."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    TOKEN_REVOKED = "TOKEN_REVOKED"
    FORBIDDEN = "FORBIDDEN"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    ACCOUNT_DISABLED = "ACCOUNT_DISABLED"
    INVALID_REFRESH_TOKEN = "INVALID_REFRESH_TOKEN"
    REFRESH_TOKEN_REUSED = "REFRESH_TOKEN_REUSED"
    RATE_LIMITED = "RATE_LIMITED"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    NOT_FOUND = "NOT_FOUND"
    REGISTRATION_CLOSED = "REGISTRATION_CLOSED"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


DEFAULT_MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.UNAUTHENTICATED: "Authentication required: send a valid access token.",
    ErrorCode.TOKEN_EXPIRED: "The access token has expired: refresh it and retry.",
    ErrorCode.TOKEN_REVOKED: "The session has ended: sign in again.",
    ErrorCode.FORBIDDEN: "You are not allowed to do this.",
    ErrorCode.INVALID_CREDENTIALS: "Invalid email or password.",
    ErrorCode.ACCOUNT_DISABLED: "This account is disabled.",
    ErrorCode.INVALID_REFRESH_TOKEN: "The refresh token is missing, invalid or expired.",
    ErrorCode.REFRESH_TOKEN_REUSED: (
        "This refresh token was already used: the session has been revoked."
    ),
    ErrorCode.RATE_LIMITED: "Too many attempts: try again later.",
    ErrorCode.BAD_USER_INPUT: "Invalid input.",
    ErrorCode.NOT_FOUND: "Not found.",
    ErrorCode.REGISTRATION_CLOSED: "Registration is closed.",
    ErrorCode.SERVICE_UNAVAILABLE: "The service is temporarily unavailable: try again shortly.",
    ErrorCode.INTERNAL_SERVER_ERROR: "Unexpected error.",
}


class AuthError(Exception):
    """An expected failure with a contract code; its message is safe to show to clients."""

    def __init__(self, code: ErrorCode, message: str | None = None, **extensions: Any) -> None:
        self.code = code
        self.message = message or DEFAULT_MESSAGES[code]
        self.extensions = extensions
        super().__init__(self.message)


def bad_input(field: str, message: str) -> AuthError:
    return AuthError(ErrorCode.BAD_USER_INPUT, message, field=field)
