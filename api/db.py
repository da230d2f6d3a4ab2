"""Database configuration for tortoise, and how database failures are told apart."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

import asyncpg
from tortoise import BaseDBAsyncClient, Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.exceptions import ConfigurationError, DBConnectionError

from api.postgres import PooledConnection
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


# The query parameters a PostgreSQL URL may carry. Anything else would reach asyncpg as an
# unknown keyword and fail on the first query, far from the setting that caused it.
_PG_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_PG_PARAMETERS: dict[str, type[int] | type[float] | type[str]] = {
    "minsize": int,
    "maxsize": int,
    "timeout": float,
    "command_timeout": float,
    "application_name": str,
    "schema": str,
}


def _postgres_options(query: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in ("sslmode", "ssl"):
            mode = {"true": "require", "false": "disable"}.get(value.lower(), value.lower())
            if mode not in _PG_SSL_MODES:
                raise SettingsError(
                    f"KEYTURN_DATABASE_URL: {name}={value} is not one of {', '.join(_PG_SSL_MODES)}"
                )
            options["ssl"] = mode
        elif name in _PG_PARAMETERS:
            try:
                options[name] = _PG_PARAMETERS[name](value)
            except ValueError:
                raise SettingsError(f"KEYTURN_DATABASE_URL: {name}={value} is not valid") from None
        else:
            known = ", ".join(["sslmode", *_PG_PARAMETERS])
            raise SettingsError(
                f"KEYTURN_DATABASE_URL: unknown parameter {name!r} (PostgreSQL takes {known})"
            )
    return options


def tortoise_config(database_url: str) -> dict[str, Any]:
    dialect = dialect_of(database_url)
    base, _, query = database_url.partition("?")
    try:
        connection = expand_db_url(base if dialect == "postgres" else database_url)
    except (ConfigurationError, ValueError) as exc:
        raise SettingsError(f"KEYTURN_DATABASE_URL is not a valid database URL: {exc}") from None
    credentials = connection["credentials"]
    if dialect == "postgres":
        if not credentials.get("database"):
            # Without a name asyncpg picks the user's default database: never the intended one.
            raise SettingsError(
                "KEYTURN_DATABASE_URL names no database (postgres://USER@HOST:PORT/DATABASE)"
            )
        credentials.update(_postgres_options(query))
    if dialect == "sqlite":
        # Several workers may share the file: wait for a lock rather than fail at once, and
        # take it when a transaction begins, where that wait applies (see api/sqlite.py).
        credentials.setdefault("busy_timeout", 5000)
        # 64 MB of page cache (SQLite's default is 2 MB): at a million sessions the indexes the
        # hot paths walk no longer fit in 2 MB, and every lookup re-read pages from the file.
        credentials.setdefault("cache_size", -65536)
        connection["engine"] = "api.sqlite"
    else:
        credentials.setdefault("minsize", 1)
        credentials.setdefault("maxsize", 10)
        credentials.setdefault("timeout", 5)
        credentials.setdefault("command_timeout", 10)
        # No reset query on each connection's return to the pool, and a few connections held
        # for the hot statements (see api/postgres.py).
        credentials["connection_class"] = PooledConnection
        connection["engine"] = "api.postgres"
    # The connection is named after its dialect: tortoise caches compiled SQL per connection
    # name, so one process that talks to both kinds (the test suite) needs distinct names.
    return {
        "connections": {dialect: connection},
        "apps": {"models": {"models": MODEL_MODULES, "default_connection": dialect}},
        "use_tz": True,
        "timezone": "UTC",
    }


_BROKEN_PROTOCOL = "cannot switch to state"
_UNAVAILABLE_SQLITE_MESSAGES = (
    "unable to open",
    "disk i/o error",
    "database is locked",
    # The file cannot take a write: its disk is full, or it (or its folder) is read-only. An
    # operator's to fix, as an unreachable server is; nothing the request did wrong.
    "database or disk is full",
    "readonly database",
)


def sqlite_path(database_url: str) -> Path | None:
    """The file of an SQLite database URL; None for PostgreSQL or an in-memory database."""
    if dialect_of(database_url) != "sqlite":
        return None
    file_path = tortoise_config(database_url)["connections"]["sqlite"]["credentials"]["file_path"]
    return None if file_path == ":memory:" else Path(file_path)


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
            | asyncpg.InvalidAuthorizationSpecificationError
            | asyncpg.TooManyConnectionsError
            | asyncpg.AdminShutdownError
            # The database named in the URL is gone (dropped, or not created yet): as
            # unreachable as a stopped server, and what /readyz says of it too.
            | asyncpg.InvalidCatalogNameError,
        ):
            return True
        if isinstance(current, OSError) and not isinstance(current, FileNotFoundError):
            return True
        if isinstance(current, asyncpg.InternalClientError) and _BROKEN_PROTOCOL in str(current):
            # A connection whose backend was just terminated, used again before the socket's
            # close reached it: its protocol is still consuming the fatal error (asyncpg
            # issues 784 and 1069). The connection is lost; the pool drops it.
            return True
        if isinstance(current, sqlite3.OperationalError) and any(
            text in str(current).lower() for text in _UNAVAILABLE_SQLITE_MESSAGES
        ):
            return True
        current = current.__cause__ or current.__context__
    return False
