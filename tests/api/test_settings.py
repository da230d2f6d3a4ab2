"""Settings: the contract's variables, production's refusals and development's generated secrets."""

from __future__ import annotations

import json
import logging
import os
import stat
import string
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from api.settings import DEV_SECRETS_FILE, Environment, Settings, SettingsError, load_settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GOOD_ACCESS = "kT9-access-Zq3vR8mW2xL5nB7cY4pD6fH1jK0sG"
GOOD_REFRESH = "kT9-refresh-Aa8uE3tQ7wN2mV5bX9cZ4rP1yL6"
SettingsErrors = (SettingsError, ValidationError)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No KEYTURN_ variable from the caller's shell and no .env file: each test sets its own."""
    for name in list(os.environ):
        if name.upper().startswith("KEYTURN_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def production(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    values = {
        "KEYTURN_ENV": "production",
        "KEYTURN_ACCESS_TOKEN_SECRET": GOOD_ACCESS,
        "KEYTURN_REFRESH_TOKEN_SECRET": GOOD_REFRESH,
        **variables,
    }
    for name, value in values.items():
        if value:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)


def refusal(exc: pytest.ExceptionInfo[Exception]) -> str:
    return str(exc.value)


# DESIGN.md's configuration table: variable, the field it sets, its default in development.
CONTRACT: list[tuple[str, str, Any]] = [
    ("KEYTURN_ENV", "env", Environment.DEVELOPMENT),
    ("KEYTURN_DATABASE_URL", "database_url", "sqlite://keyturn.sqlite3"),
    ("KEYTURN_REDIS_URL", "redis_url", None),
    ("KEYTURN_ACCESS_TOKEN_SECRET", "access_token_secret", None),
    ("KEYTURN_REFRESH_TOKEN_SECRET", "refresh_token_secret", None),
    ("KEYTURN_JWT_ISSUER", "jwt_issuer", "keyturn"),
    ("KEYTURN_JWT_AUDIENCE", "jwt_audience", "keyturn"),
    ("KEYTURN_ACCESS_TOKEN_TTL", "access_token_ttl", 900),
    ("KEYTURN_REFRESH_TOKEN_TTL", "refresh_token_ttl", 604800),
    ("KEYTURN_SESSION_MAX_AGE", "session_max_age", 2592000),
    ("KEYTURN_REFRESH_REUSE_GRACE", "refresh_reuse_grace", 10),
    ("KEYTURN_REVOCATION_CACHE_TTL", "revocation_cache_ttl", 1),
    ("KEYTURN_COOKIE_SECURE", "cookie_secure", True),
    ("KEYTURN_COOKIE_SAMESITE", "cookie_samesite", "strict"),
    ("KEYTURN_CORS_ORIGINS", "cors_origins", []),
    ("KEYTURN_REGISTRATION_OPEN", "registration_open", False),
    ("KEYTURN_LOGIN_MAX_FAILURES_PER_ACCOUNT", "login_max_failures_per_account", 10),
    ("KEYTURN_LOGIN_MAX_ATTEMPTS_PER_IP", "login_max_attempts_per_ip", 100),
    ("KEYTURN_REGISTER_MAX_PER_IP", "register_max_per_ip", 20),
    ("KEYTURN_REFRESH_MAX_PER_IP", "refresh_max_per_ip", 600),
    ("KEYTURN_TRUSTED_PROXIES", "trusted_proxies", []),
    ("KEYTURN_GRAPHIQL", "graphiql", None),
    ("KEYTURN_INTROSPECTION", "introspection", None),
]

# A value other than the default for each variable, and what the field then holds.
NON_DEFAULTS: dict[str, tuple[str, Any]] = {
    "KEYTURN_ENV": ("production", Environment.PRODUCTION),
    "KEYTURN_DATABASE_URL": ("postgres://u@db:5432/k", "postgres://u@db:5432/k"),
    "KEYTURN_REDIS_URL": ("redis://cache:6379/0", "redis://cache:6379/0"),
    "KEYTURN_JWT_ISSUER": ("https://auth.example", "https://auth.example"),
    "KEYTURN_JWT_AUDIENCE": ("shop", "shop"),
    "KEYTURN_ACCESS_TOKEN_TTL": ("300", 300),
    "KEYTURN_REFRESH_TOKEN_TTL": ("86400", 86400),
    "KEYTURN_SESSION_MAX_AGE": ("172800", 172800),
    "KEYTURN_REFRESH_REUSE_GRACE": ("0", 0),
    "KEYTURN_REVOCATION_CACHE_TTL": ("0", 0),
    "KEYTURN_COOKIE_SECURE": ("false", False),
    "KEYTURN_COOKIE_SAMESITE": ("lax", "lax"),
    "KEYTURN_CORS_ORIGINS": ("https://app.example", ["https://app.example"]),
    "KEYTURN_REGISTRATION_OPEN": ("true", True),
    "KEYTURN_LOGIN_MAX_FAILURES_PER_ACCOUNT": ("3", 3),
    "KEYTURN_LOGIN_MAX_ATTEMPTS_PER_IP": ("7", 7),
    "KEYTURN_REGISTER_MAX_PER_IP": ("2", 2),
    "KEYTURN_REFRESH_MAX_PER_IP": ("60", 60),
    "KEYTURN_TRUSTED_PROXIES": ("10.0.0.1", ["10.0.0.1"]),
    "KEYTURN_GRAPHIQL": ("false", False),
    "KEYTURN_INTROSPECTION": ("false", False),
}


@pytest.mark.parametrize(("variable", "field", "default"), CONTRACT)
def test_every_contract_variable_is_a_field_with_its_default(
    variable: str, field: str, default: Any
) -> None:
    assert variable == f"KEYTURN_{field.upper()}"
    assert field in Settings.model_fields
    assert getattr(Settings(_env_file=None), field) == default


@pytest.mark.parametrize("variable", sorted(NON_DEFAULTS))
def test_every_contract_variable_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    raw, expected = NON_DEFAULTS[variable]
    if variable == "KEYTURN_ENV":
        production(monkeypatch)
    monkeypatch.setenv(variable, raw)
    field = variable.removeprefix("KEYTURN_").lower()
    assert getattr(Settings(), field) == expected


def test_secrets_are_read_from_the_environment_and_kept_out_of_repr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    production(monkeypatch)
    settings = load_settings()
    assert settings.access_secret() == GOOD_ACCESS.encode()
    assert settings.refresh_secret() == GOOD_REFRESH.encode()
    assert GOOD_ACCESS not in repr(settings)
    assert GOOD_REFRESH not in repr(settings)


def test_settings_are_read_from_a_dot_env_file_in_the_working_folder(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("KEYTURN_JWT_ISSUER=from-dot-env\nKEYTURN_ACCESS_TOKEN_TTL=60\n")
    settings = load_settings()
    assert settings.jwt_issuer == "from-dot-env"
    assert settings.access_token_ttl == 60


def test_the_environment_wins_over_the_dot_env_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("KEYTURN_JWT_ISSUER=from-dot-env\n")
    monkeypatch.setenv("KEYTURN_JWT_ISSUER", "from-environment")
    assert load_settings().jwt_issuer == "from-environment"


def test_cors_origins_parse_from_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "KEYTURN_CORS_ORIGINS",
        " https://app.example , https://admin.example/,,http://localhost:3000",
    )
    assert Settings().cors_origins == [
        "https://app.example",
        "https://admin.example",
        "http://localhost:3000",
    ]


def test_an_empty_cors_origins_variable_allows_no_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYTURN_CORS_ORIGINS", "")
    assert Settings().cors_origins == []


def test_a_wildcard_cors_origin_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYTURN_CORS_ORIGINS", "https://app.example,*")
    with pytest.raises(SettingsErrors) as exc:
        Settings()
    assert "KEYTURN_CORS_ORIGINS" in refusal(exc)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6379/0",
        "not a url",
        "redis://:s3cret-redis-pw@127.0.0.1:notaport/0",
        "redis://:s3cret-redis-pw#more@127.0.0.1:6379/0",  # urllib quoted "s3cret-redis-pw"
        "redis://127.0.0.1:6379/0?socket_timeout=abc",
        "redis://127.0.0.1:6379/cache",
    ],
)
def test_a_malformed_redis_url_is_refused_by_name_without_its_password(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    # Before, the first Redis client to be built raised a traceback: at start-up, or after
    # `keyturn users revoke-sessions` had committed (which then exited 1).
    monkeypatch.setenv("KEYTURN_REDIS_URL", url)
    with pytest.raises(SettingsErrors) as exc:
        Settings()
    assert "KEYTURN_REDIS_URL is not a Redis URL" in refusal(exc)
    assert "s3cret-redis-pw" not in refusal(exc)


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://:pw@cache.internal:6380", "redis://h/12"]
)
def test_redis_urls_are_accepted(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("KEYTURN_REDIS_URL", url)
    assert Settings().redis_url == url


def test_an_empty_redis_url_means_no_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYTURN_REDIS_URL", "")
    assert Settings().redis_url is None


@pytest.mark.parametrize(
    "entry",
    [
        "null",  # every sandboxed frame's and data: page's origin
        "app.example",
        "https://app.example/signin",
        "https://app.example?x=1",
        "https://user@app.example",
        "ftp://app.example",
        "https://app.example:99999",
        "https://",
    ],
)
def test_a_cors_entry_that_is_no_origin_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, entry: str
) -> None:
    monkeypatch.setenv("KEYTURN_CORS_ORIGINS", f"https://app.example,{entry}")
    with pytest.raises(SettingsErrors) as exc:
        Settings()
    assert "KEYTURN_CORS_ORIGINS" in refusal(exc)
    assert repr(entry) in refusal(exc)


def test_cors_origins_are_kept_as_browsers_spell_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "KEYTURN_CORS_ORIGINS",
        "HTTPS://App.Example:443,http://localhost:80/,https://app.example:8443,http://[::1]:3000",
    )
    assert Settings().cors_origins == [
        "https://app.example",
        "http://localhost",
        "https://app.example:8443",
        "http://[::1]:3000",
    ]


def test_trusted_proxies_parse_from_a_comma_separated_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEYTURN_TRUSTED_PROXIES", "10.0.0.1, 192.168.0.0/16,::1")
    assert Settings().trusted_proxies == ["10.0.0.1", "192.168.0.0/16", "::1"]


def test_a_trusted_proxy_that_is_no_address_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEYTURN_TRUSTED_PROXIES", "10.0.0.1,proxy.internal")
    with pytest.raises(SettingsErrors) as exc:
        Settings()
    assert "KEYTURN_TRUSTED_PROXIES" in refusal(exc)
    assert "proxy.internal" in refusal(exc)


def test_graphiql_and_introspection_are_on_in_development_and_off_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    development = load_settings()
    assert development.graphiql_enabled
    assert development.introspection_enabled
    production(monkeypatch)
    assert not load_settings().graphiql_enabled
    assert not load_settings().introspection_enabled
    monkeypatch.setenv("KEYTURN_GRAPHIQL", "true")
    monkeypatch.setenv("KEYTURN_INTROSPECTION", "true")
    assert load_settings().graphiql_enabled
    assert load_settings().introspection_enabled


# Production refuses to start, naming the variable to fix.


def test_production_starts_with_two_good_secrets_and_secure_cookies(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    production(monkeypatch)
    settings = load_settings()
    assert settings.is_production
    assert settings.cookie_secure
    assert not (tmp_path / DEV_SECRETS_FILE).exists()


@pytest.mark.parametrize(
    "variable", ["KEYTURN_ACCESS_TOKEN_SECRET", "KEYTURN_REFRESH_TOKEN_SECRET"]
)
def test_production_refuses_a_missing_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str
) -> None:
    production(monkeypatch, **{variable: ""})
    with pytest.raises(SettingsErrors) as exc:
        load_settings()
    assert variable in refusal(exc)
    assert not (tmp_path / DEV_SECRETS_FILE).exists()


def test_production_without_any_secret_names_the_access_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    production(monkeypatch, KEYTURN_ACCESS_TOKEN_SECRET="", KEYTURN_REFRESH_TOKEN_SECRET="")
    with pytest.raises(SettingsErrors) as exc:
        load_settings()
    assert "KEYTURN_ACCESS_TOKEN_SECRET" in refusal(exc)


@pytest.mark.parametrize(
    "variable", ["KEYTURN_ACCESS_TOKEN_SECRET", "KEYTURN_REFRESH_TOKEN_SECRET"]
)
def test_production_refuses_a_secret_shorter_than_32_bytes(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    production(monkeypatch, **{variable: string.ascii_letters[:31]})
    with pytest.raises(SettingsErrors) as exc:
        load_settings()
    assert variable in refusal(exc)
    assert "32" in refusal(exc)


def test_production_accepts_a_secret_of_exactly_32_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    production(monkeypatch, KEYTURN_ACCESS_TOKEN_SECRET=string.ascii_letters[:32])
    assert load_settings().access_secret() == string.ascii_letters[:32].encode()


@pytest.mark.parametrize(
    "sample",
    [
        "changethis",
        "please-change-this-secret-key-now",
        "PLEASE-CHANGE-THIS-SECRET-KEY-NOW",
        "x" * 32,
        "0" * 64,
        "abababababababababababababababab",
    ],
)
@pytest.mark.parametrize(
    "variable", ["KEYTURN_ACCESS_TOKEN_SECRET", "KEYTURN_REFRESH_TOKEN_SECRET"]
)
def test_production_refuses_a_sample_secret(
    monkeypatch: pytest.MonkeyPatch, variable: str, sample: str
) -> None:
    production(monkeypatch, **{variable: sample})
    with pytest.raises(SettingsErrors) as exc:
        load_settings()
    assert variable in refusal(exc)


def test_production_refuses_the_same_secret_for_both_token_kinds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    production(monkeypatch, KEYTURN_REFRESH_TOKEN_SECRET=GOOD_ACCESS)
    with pytest.raises(SettingsErrors) as exc:
        load_settings()
    assert "KEYTURN_REFRESH_TOKEN_SECRET" in refusal(exc)


def test_production_refuses_insecure_cookies(monkeypatch: pytest.MonkeyPatch) -> None:
    production(monkeypatch, KEYTURN_COOKIE_SECURE="false")
    with pytest.raises(SettingsErrors) as exc:
        load_settings()
    assert "KEYTURN_COOKIE_SECURE" in refusal(exc)


def test_development_allows_insecure_cookies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYTURN_COOKIE_SECURE", "false")
    assert load_settings().cookie_secure is False


@pytest.mark.parametrize(("given", "kept"), [("Strict", "strict"), (" LAX ", "lax")])
def test_samesite_is_read_in_any_case(
    monkeypatch: pytest.MonkeyPatch, given: str, kept: str
) -> None:
    monkeypatch.setenv("KEYTURN_COOKIE_SAMESITE", given)
    assert Settings().cookie_samesite == kept


def test_an_unknown_samesite_is_still_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYTURN_COOKIE_SAMESITE", "sideways")
    with pytest.raises(SettingsErrors) as exc:
        Settings()
    assert "cookie_samesite" in refusal(exc)


def test_samesite_none_requires_secure_cookies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYTURN_COOKIE_SAMESITE", "none")
    monkeypatch.setenv("KEYTURN_COOKIE_SECURE", "false")
    with pytest.raises(SettingsErrors) as exc:
        load_settings()
    assert "KEYTURN_COOKIE_SECURE" in refusal(exc)


def test_explicit_secrets_are_checked_in_development_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYTURN_ACCESS_TOKEN_SECRET", GOOD_ACCESS)
    monkeypatch.setenv("KEYTURN_REFRESH_TOKEN_SECRET", GOOD_ACCESS)
    with pytest.raises(SettingsErrors) as exc:
        load_settings()
    assert "KEYTURN_REFRESH_TOKEN_SECRET" in refusal(exc)


# Development generates its secrets once, into a file git ignores.


def test_development_generates_both_secrets_once_into_a_private_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="keyturn"):
        settings = load_settings()
    secrets_file = tmp_path / DEV_SECRETS_FILE
    assert secrets_file.exists()
    stored = json.loads(secrets_file.read_text())
    assert settings.access_secret() == stored["access"].encode()
    assert settings.refresh_secret() == stored["refresh"].encode()
    assert settings.access_secret() != settings.refresh_secret()
    assert min(len(settings.access_secret()), len(settings.refresh_secret())) >= 32
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert any(DEV_SECRETS_FILE in record.getMessage() for record in caplog.records)


def test_generated_development_secrets_would_pass_production_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    development = load_settings()
    production(
        monkeypatch,
        KEYTURN_ACCESS_TOKEN_SECRET=development.access_secret().decode(),
        KEYTURN_REFRESH_TOKEN_SECRET=development.refresh_secret().decode(),
    )
    assert load_settings().is_production


def test_development_reuses_its_secrets_on_the_next_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = load_settings()
    written = (tmp_path / DEV_SECRETS_FILE).read_bytes()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="keyturn"):
        second = load_settings()
    assert second.access_secret() == first.access_secret()
    assert second.refresh_secret() == first.refresh_secret()
    assert (tmp_path / DEV_SECRETS_FILE).read_bytes() == written
    assert not any("generated" in record.getMessage() for record in caplog.records)


def test_workers_starting_together_agree_on_the_generated_secrets() -> None:
    """Several workers may start at once with no secrets file: all must sign alike."""
    barrier = threading.Barrier(8)

    def start() -> tuple[bytes, bytes]:
        barrier.wait()
        settings = load_settings()
        return settings.access_secret(), settings.refresh_secret()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = set(pool.map(lambda _: start(), range(8)))
    assert len(results) == 1


def test_development_keeps_a_secret_given_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEYTURN_ACCESS_TOKEN_SECRET", GOOD_ACCESS)
    settings = load_settings()
    assert settings.access_secret() == GOOD_ACCESS.encode()
    assert settings.refresh_secret() != GOOD_ACCESS.encode()
    assert len(settings.refresh_secret()) >= 32


def test_development_with_both_secrets_given_writes_no_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KEYTURN_ACCESS_TOKEN_SECRET", GOOD_ACCESS)
    monkeypatch.setenv("KEYTURN_REFRESH_TOKEN_SECRET", GOOD_REFRESH)
    load_settings()
    assert not (tmp_path / DEV_SECRETS_FILE).exists()


def test_a_damaged_development_secrets_file_is_named_in_the_refusal(tmp_path: Path) -> None:
    (tmp_path / DEV_SECRETS_FILE).write_text("{not json")
    with pytest.raises(SettingsErrors) as exc:
        load_settings()
    assert DEV_SECRETS_FILE in refusal(exc)


def test_git_ignores_the_development_secrets_file() -> None:
    ignored = (PROJECT_ROOT / ".gitignore").read_text().splitlines()
    assert DEV_SECRETS_FILE in ignored
