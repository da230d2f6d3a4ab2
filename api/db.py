"""Database configuration for tortoise, and how database failures are told apart."""

from __future__ import annotations

import sqlite3
from typing import Any, Literal

import asyncpg
from tortoise import BaseDBAsyncClient, Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.exceptions import ConfigurationError, DBConnectionError

from api.settings import SettingsError

Dialect = Literal["sqlite", "postgres"]
MODEL_MODULES = ["models", "aerich.models"]

_DIALECTS: dict[str, Dialect] = {
    "sqlite": "sqlite",
    "postgres": "postgres",
    "postgresql": "postgres",
    "asyncpg": "postgres",
}


def dialect_of(database_url: str) -> Dialect:
    scheme = database_url.split("://", 1)[0].lower() if "://" in database_url else ""
    try:
        return _DIALECTS[scheme]
    except KeyError:
        raise SettingsError(
            "KEYTURN_DATABASE_URL must start with sqlite:// or postgres:// "
            f"(got {scheme + '://' if scheme else 'no scheme'})"
        ) from None


def tortoise_config(database_url: str) -> dict[str, Any]:
    dialect = dialect_of(database_url)
    try:
        connection = expand_db_url(database_url)
    except (ConfigurationError, ValueError) as exc:
        raise SettingsError(f"KEYTURN_DATABASE_URL is not a valid database URL: {exc}") from None
    credentials = connection["credentials"]
    if dialect == "sqlite":
        # Several workers may share the file: wait for a lock rather than fail at once.
        credentials.setdefault("busy_timeout", 5000)
    else:
        credentials.setdefault("minsize", 1)
        credentials.setdefault("maxsize", 10)
        credentials.setdefault("timeout", 5)
        credentials.setdefault("command_timeout", 10)
    # The connection is named after its dialect: tortoise caches compiled SQL per connection
    # name, so one process that talks to both kinds (the test suite) needs distinct names.
    return {
        "connections": {dialect: connection},
        "apps": {"models": {"models": MODEL_MODULES, "default_connection": dialect}},
        "use_tz": True,
        "timezone": "UTC",
    }


_UNAVAILABLE_SQLITE_MESSAGES = ("unable to open", "disk i/o error", "database is locked")


def connection(database_url: str) -> BaseDBAsyncClient:
    return Tortoise.get_connection(dialect_of(database_url))


def is_unavailable(exc: BaseException) -> bool:
    """True when the failure means the database cannot be reached, not that a query is wrong."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current,
            DBConnectionError
            | ConnectionError
            | TimeoutError
            | asyncpg.PostgresConnectionError
            | asyncpg.InterfaceError
            | asyncpg.CannotConnectNowError
            | asyncpg.TooManyConnectionsError
            | asyncpg.AdminShutdownError,
        ):
            return True
        if isinstance(current, OSError) and not isinstance(current, FileNotFoundError):
            return True
        if isinstance(current, sqlite3.OperationalError) and any(
            text in str(current).lower() for text in _UNAVAILABLE_SQLITE_MESSAGES
        ):
            return True
        current = current.__cause__ or current.__context__
    return False
