"""Keyturn's settings: one class, read once at start-up and passed down."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import secrets
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

logger = logging.getLogger("keyturn")

MIN_SECRET_BYTES = 32
DEV_SECRETS_FILE = ".keyturn-secrets"

# Values that appear in tutorials and sample files; a production secret must never be one.
SAMPLE_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "changethis",
        "secret",
        "your-secret-key",
        "your-256-bit-secret",
        "supersecret",
        "please-change-this-secret-key-now",
        "x" * 32,
        "0" * 32,
    }
)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


def browser_origin(entry: str) -> str:
    """An allowed origin as browsers send it in `Origin` (RFC 6454): `scheme://host[:port]`,
    lower-cased, without a default port or a trailing slash. Anything else would either never
    match (a path, a capital letter: a cross-site app that silently cannot sign in) or match
    too much: `null` is the origin of every sandboxed frame and `data:` page on the web."""
    text = entry.rstrip("/")
    refusal = (
        f"KEYTURN_CORS_ORIGINS: {entry!r} is not an origin; write scheme://host[:port], "
        "such as https://app.example"
    )
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(refusal) from None
    if (
        parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.path
        or parts.query
        or parts.fragment
        or "?" in text
        or "#" in text
    ):
        raise ValueError(refusal)
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if ":" in host:  # an IPv6 address, bracketed in an origin
        host = f"[{host}]"
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the variable to fix."""


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KEYTURN_",
        env_file=".env",
        extra="ignore",
        frozen=True,
        # URLs carry passwords: a refused value is named, never repeated.
        hide_input_in_errors=True,
    )

    env: Environment = Environment.DEVELOPMENT
    database_url: str = "sqlite://keyturn.sqlite3"
    redis_url: str | None = None

    access_token_secret: SecretStr | None = None
    refresh_token_secret: SecretStr | None = None
    jwt_issuer: str = "keyturn"
    jwt_audience: str = "keyturn"

    access_token_ttl: int = Field(default=900, gt=0)
    refresh_token_ttl: int = Field(default=604800, gt=0)
    session_max_age: int = Field(default=2592000, gt=0)
    refresh_reuse_grace: int = Field(default=10, ge=0)
    revocation_cache_ttl: float = Field(default=1, ge=0, le=1)
    audit_retention: int = Field(default=365 * 86400, gt=0)

    cookie_secure: bool = True
    cookie_samesite: Literal["strict", "lax", "none"] = "strict"
    cors_origins: Annotated[list[str], NoDecode] = []
    registration_open: bool = False

    login_max_failures_per_account: int = Field(default=10, gt=0)
    # The 15 minutes of the failure count; repeated lockouts last longer (see api/ratelimit.py).
    login_failure_window: int = Field(default=900, gt=0)
    login_max_attempts_per_ip: int = Field(default=100, gt=0)
    register_max_per_ip: int = Field(default=20, gt=0)
    refresh_max_per_ip: int = Field(default=600, gt=0)
    trusted_proxies: Annotated[list[str], NoDecode] = []

    graphiql: bool | None = None
    introspection: bool | None = None

    password_hash_concurrency: int = Field(default=2, gt=0)
    # Hashing jobs that may wait for a free worker; past that, RATE_LIMITED (a flood's bound).
    password_hash_queue: int = Field(default=64, gt=0)

    _split_lists = field_validator("cors_origins", "trusted_proxies", mode="before")(_split_csv)

    @field_validator("cookie_samesite", mode="before")
    @classmethod
    def _samesite_in_any_case(cls, value: object) -> object:
        # Cookies spell it Strict, Lax, None: any case is the same setting.
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("cors_origins")
    @classmethod
    def _browser_origins(cls, origins: list[str]) -> list[str]:
        if "*" in origins:
            raise ValueError("KEYTURN_CORS_ORIGINS cannot be '*': list the allowed origins")
        return [browser_origin(origin) for origin in origins]

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, url: str | None) -> str | None:
        # Checked here so that a typo stops start-up with one line naming the setting; it was a
        # traceback when the first Redis client was built (after `users revoke-sessions` had
        # already committed).
        if not url:
            return None
        from redis.asyncio.connection import parse_url as parse_redis_url

        try:
            parse_redis_url(url)
        except ValueError as exc:
            # Not redis-py's reason: urllib's quotes the text after the host, which is part of
            # the password when it holds an unencoded '/', '#' or '?'.
            reason = (
                "it must start with redis://, rediss:// or unix://"
                if "scheme" in str(exc)
                else "percent-encode any '/', '#', '?' or '@' in its password"
            )
            raise ValueError(f"KEYTURN_REDIS_URL is not a Redis URL: {reason}") from None
        scheme = url.partition("://")[0]
        database = urlsplit(url).path.strip("/") if scheme in ("redis", "rediss") else ""
        if database and not database.isdigit():
            raise ValueError(
                "KEYTURN_REDIS_URL is not a Redis URL: its path must be a database number "
                "(redis://host:6379/0)"
            )
        return url

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, entries: list[str]) -> list[str]:
        # Checked here so that a typo stops start-up with the variable's name, not a traceback.
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"KEYTURN_TRUSTED_PROXIES: {entry!r} is not an IP address or network"
                ) from None
        return entries

    @model_validator(mode="after")
    def _check_production(self) -> Settings:
        if self.env is Environment.PRODUCTION:
            _check_secret("KEYTURN_ACCESS_TOKEN_SECRET", self.access_token_secret)
            _check_secret("KEYTURN_REFRESH_TOKEN_SECRET", self.refresh_token_secret)
            if not self.cookie_secure:
                raise SettingsError("KEYTURN_COOKIE_SECURE must be true in production")
        if self.access_token_secret is not None and self.refresh_token_secret is not None:
            for name, secret in (
                ("KEYTURN_ACCESS_TOKEN_SECRET", self.access_token_secret),
                ("KEYTURN_REFRESH_TOKEN_SECRET", self.refresh_token_secret),
            ):
                if len(secret.get_secret_value().encode()) < MIN_SECRET_BYTES:
                    raise SettingsError(f"{name} must be at least {MIN_SECRET_BYTES} bytes long")
            if self.access_token_secret == self.refresh_token_secret:
                raise SettingsError(
                    "KEYTURN_REFRESH_TOKEN_SECRET must differ from KEYTURN_ACCESS_TOKEN_SECRET"
                )
        if self.cookie_samesite == "none" and not self.cookie_secure:
            raise SettingsError("KEYTURN_COOKIE_SAMESITE=none requires KEYTURN_COOKIE_SECURE=true")
        return self

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @property
    def graphiql_enabled(self) -> bool:
        return self.graphiql if self.graphiql is not None else not self.is_production

    @property
    def introspection_enabled(self) -> bool:
        return self.introspection if self.introspection is not None else not self.is_production

    def access_secret(self) -> bytes:
        return _require(self.access_token_secret, "KEYTURN_ACCESS_TOKEN_SECRET")

    def refresh_secret(self) -> bytes:
        return _require(self.refresh_token_secret, "KEYTURN_REFRESH_TOKEN_SECRET")


def _require(secret: SecretStr | None, name: str) -> bytes:
    if secret is None:
        raise SettingsError(f"{name} is not set")
    return secret.get_secret_value().encode()


def _check_secret(name: str, secret: SecretStr | None) -> None:
    if secret is None or not secret.get_secret_value():
        raise SettingsError(f"{name} is required in production")
    value = secret.get_secret_value()
    if value.strip().lower() in SAMPLE_SECRETS or len(set(value)) < 8:
        raise SettingsError(f"{name} is a sample or low-entropy value: generate a random one")
    if len(value.encode()) < MIN_SECRET_BYTES:
        raise SettingsError(f"{name} must be at least {MIN_SECRET_BYTES} bytes long")


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment; in development, fill in missing secrets.

    Development secrets are generated once into a git-ignored file so that tokens survive a
    restart; production never gets here without both secrets (the validator refuses).
    """
    settings = Settings(**overrides)
    if settings.is_production or (
        settings.access_token_secret is not None and settings.refresh_token_secret is not None
    ):
        return settings
    stored = _dev_secrets(Path(DEV_SECRETS_FILE))
    return Settings(
        **{
            "access_token_secret": settings.access_token_secret or stored["access"],
            "refresh_token_secret": settings.refresh_token_secret or stored["refresh"],
            **overrides,
        }
    )


def _dev_secrets(path: Path) -> dict[str, str]:
    if path.exists():
        return _read_dev_secrets(path)
    generated = {"access": secrets.token_urlsafe(48), "refresh": secrets.token_urlsafe(48)}
    # Written whole and private before it appears under its name, and never over a file that
    # another process (a second worker starting at the same moment) created first: every
    # process must sign with the same secrets.
    fd, draft = tempfile.mkstemp(prefix=f"{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(generated, file)
        try:
            os.link(draft, path)
        except FileExistsError:
            return _read_dev_secrets(path)
        except OSError:
            # A file system without hard links: the last writer wins, which only a race of two
            # first starts could notice.
            os.replace(draft, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(draft)
    logger.warning(
        "development mode: generated signing secrets into %s (git ignores it); "
        "set KEYTURN_ACCESS_TOKEN_SECRET and KEYTURN_REFRESH_TOKEN_SECRET in production",
        path.resolve(),
    )
    return generated


def _read_dev_secrets(path: Path) -> dict[str, str]:
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SettingsError(
            f"cannot read {path}: {exc}; delete it to generate new secrets"
        ) from None
    if not (
        isinstance(stored, dict)
        and all(isinstance(stored.get(kind), str) for kind in ("access", "refresh"))
    ):
        raise SettingsError(f"{path} lacks the two secrets; delete it to generate new ones")
    return {"access": stored["access"], "refresh": stored["refresh"]}
