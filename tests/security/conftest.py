"""Helpers for the hostile tests: attempts, counted verifications, quickly made accounts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from api.passwords import Passwords
from models import AuditEvent, Role
from models import User as UserRow
from tests.conftest import PASSWORD, GraphQLResult, Harness

LOGIN = """
mutation ($e: String!, $p: String!) {
  login(input: {email: $e, password: $p, refreshTokenDelivery: BODY}) {
    accessToken refreshToken session { id ipAddress }
  }
}
"""
REGISTER = """
mutation ($e: String!, $p: String!) {
  register(input: {email: $e, password: $p, refreshTokenDelivery: BODY}) { accessToken }
}
"""
REFRESH = """
mutation ($t: String) { refresh(refreshToken: $t, refreshTokenDelivery: BODY) { accessToken } }
"""


async def attempt(
    api: Harness, email: str, password: str, headers: dict[str, str] | None = None
) -> GraphQLResult:
    return await api.gql(LOGIN, {"e": email, "p": password}, headers=headers)


def retry_after(result: GraphQLResult) -> int:
    assert result.codes == ["RATE_LIMITED"], result
    seconds = result.errors[0]["extensions"]["retryAfter"]
    assert isinstance(seconds, int)
    return seconds


async def audit_kinds(kind: str) -> list[AuditEvent]:
    return await AuditEvent.filter(kind=kind).order_by("created_at")


@dataclass
class VerifyCounter:
    """Counts real password verifications: the argon2 work an attacker makes Keyturn do."""

    calls: int = 0


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> VerifyCounter:
    counter = VerifyCounter()
    original = Passwords.verify

    async def counted(self: Passwords, password_hash: str | None, password: str) -> bool:
        counter.calls += 1
        return await original(self, password_hash, password)

    monkeypatch.setattr(Passwords, "verify", counted)
    return counter


async def make_accounts(api: Harness, count: int, password: str = PASSWORD) -> list[str]:
    """Accounts sharing one hash, inserted at once: hashing each would cost seconds."""
    password_hash = await api.kt.passwords.hash(password)
    now = api.clock()
    emails = [f"sprayed-{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(count)]
    await UserRow.bulk_create(
        [
            UserRow(
                email=email,
                password_hash=password_hash,
                role=Role.USER,
                is_active=True,
                token_version=0,
                created_at=now,
                updated_at=now,
                password_changed_at=now,
            )
            for email in emails
        ]
    )
    return emails


def error_messages(result: dict[str, Any]) -> list[str]:
    return [error["message"] for error in result.get("errors") or []]
