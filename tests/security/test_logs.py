"""Logs never hold a password, a token, a cookie or an Authorization header."""

from __future__ import annotations

import logging

import pytest

from api.cookies import REFRESH_COOKIE
from api.logs import escape, redact
from tests.conftest import AppFactory

CANARY_PASSWORD = "canary-pass-7f3a quartz lantern"
WRONG_CANARY = "canary-wrong-91bd quartz"


def logged_text(caplog: pytest.LogCaptureFixture) -> str:
    lines = []
    for record in caplog.records:
        lines.append(record.getMessage())
        if record.exc_info:
            lines.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(lines)


async def test_no_secret_reaches_the_log_through_a_whole_session(
    app_factory: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    api = await app_factory(login_max_failures_per_account=2)
    await api.create_user(password=CANARY_PASSWORD)
    secrets: list[str] = [CANARY_PASSWORD, WRONG_CANARY]

    with caplog.at_level(logging.DEBUG):
        body = await api.login(password=CANARY_PASSWORD)
        secrets += [body["accessToken"], body["refreshToken"]]
        cookie = await api.login(password=CANARY_PASSWORD, delivery="COOKIE")
        secrets.append(api.client.cookies[REFRESH_COOKIE])
        secrets.append(cookie["accessToken"])

        await api.gql("{ me { id } }", token=body["accessToken"])
        rotated = await api.gql(
            "mutation ($t: String) { refresh(refreshToken: $t, refreshTokenDelivery: BODY)"
            " { accessToken refreshToken } }",
            {"t": body["refreshToken"]},
        )
        secrets += list(rotated.data["refresh"].values())
        await api.gql(
            "mutation { refresh { accessToken } }",
            headers={"Content-Type": "application/json"},
        )
        await api.gql(
            "mutation ($t: String) { logout(refreshToken: $t) }",
            {"t": rotated.data["refresh"]["refreshToken"]},
        )
        await api.gql("mutation { logout }")
        # Failures too: a wrong password, a lockout, a forged token, a GET carrying a password.
        for _ in range(3):
            await api.gql(
                "mutation ($e: String!, $p: String!) { login(input: {email: $e, password: $p})"
                " { accessToken } }",
                {"e": "user@example.com", "p": WRONG_CANARY},
            )
        await api.gql("{ me { id } }", token=body["accessToken"] + "x")
        await api.client.get(
            "/graphql",
            params={"query": f'mutation {{ login(input: {{password: "{CANARY_PASSWORD}"}}) }}'},
        )

    text = logged_text(caplog)
    assert "keyturn.access" in {record.name for record in caplog.records}
    for secret in secrets:
        assert secret not in text
    assert "Bearer" not in text
    assert f"{REFRESH_COOKIE}=" not in text


async def test_the_access_log_has_the_request_id_and_escapes_the_path(
    app_factory: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    api = await app_factory()
    with caplog.at_level(logging.INFO, logger="keyturn.access"):
        response = await api.client.get("/graphql%0a203.0.113.1 - forged line%1b[31m")
    records = [record for record in caplog.records if record.name == "keyturn.access"]
    assert len(records) == 1
    message = records[0].getMessage()
    assert response.headers["x-request-id"] in message
    assert "\n" not in message
    assert "\x1b" not in message
    assert "\\x0a" in message


def test_redaction_covers_the_usual_shapes_of_secrets() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    leaky = (
        f"Authorization: Bearer {jwt}\ncookie: refresh_token=abc123; other=1\n"
        '{"password": "hunter2!", "refreshToken": "r-123"} password=hunter3&x=1 '
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"
    )
    cleaned = redact(leaky)
    for secret in (jwt, "abc123", "hunter2!", "hunter3", "r-123", "aGFzaA"):
        assert secret not in cleaned
    assert "[redacted]" in cleaned


def test_escaping_keeps_one_printable_line() -> None:
    assert escape("a\nb\r\tc") == "a\\x0ab\\x0d\\x09c"
    assert escape("ünï") == "\\xfcn\\xef"
    assert escape("x" * 500).endswith("...")
    assert len(escape("x" * 500)) <= 203
