"""Which passwords Keyturn accepts, and how much hashing a flood can queue up."""

from __future__ import annotations

import asyncio

import pytest

from api.errors import AuthError, ErrorCode
from api.passwords import Passwords, PasswordsBusy, validate_password
from tests.conftest import AppFactory

STRONG = [
    "correct horse battery",
    "quartz kestrel lantern",
    "ñandú pingüino café con leche",  # any script
    "кислород пароход облако",
    "🦊🌲🏔️🌊 under the sea",  # emoji count as characters
    "Tr0ub4dor&3-staple-x",
    "w" + "quartz kestrel lantern orbit velvet thimble " * 2 + "x" * 37,  # 128 characters
]


@pytest.mark.parametrize("password", STRONG)
def test_long_or_unusual_passwords_are_accepted(password: str) -> None:
    validate_password(password)


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Kx9!vQ2", "too_short"),
        ("q" * 129, "too_long"),
        ("quartz kestrel\x00lantern", "forbidden_character"),
        ("password", "too_common"),
        ("12345678", "too_common"),
        ("password123", "too_common"),
        ("P@ssw0rd2024", "too_common"),
        ("qwertyuiop", "too_common"),
        ("iloveyou!", "too_common"),
        ("aaaaaaaaaaaaaaaa", "too_common"),
        ("x" * 128, "too_common"),
    ],
)
def test_short_long_and_guessable_passwords_are_refused_with_a_reason(
    password: str, reason: str
) -> None:
    with pytest.raises(AuthError) as refused:
        validate_password(password, field="newPassword")
    assert refused.value.code is ErrorCode.BAD_USER_INPUT
    assert refused.value.extensions == {"field": "newPassword", "reason": reason}
    assert refused.value.message.endswith(".")


def test_a_password_built_on_the_email_is_refused() -> None:
    with pytest.raises(AuthError) as refused:
        validate_password("maryjones2024", user_inputs=["mary.jones@acme-widgets.com"])
    assert refused.value.extensions["reason"] == "too_common"
    validate_password("maryjones2024 sails north", user_inputs=["mary.jones@acme-widgets.com"])


def test_the_length_counts_characters_not_bytes() -> None:
    phrase = ("ключ от старого дома лежит под серым камнем возле тихой реки " * 3)[:128]
    assert len(phrase.encode()) > 200
    validate_password(phrase)
    with pytest.raises(AuthError) as refused:
        validate_password(phrase + "ы")
    assert refused.value.extensions["reason"] == "too_long"


async def test_register_explains_a_weak_password(app_factory: AppFactory) -> None:
    api = await app_factory()
    result = await api.gql(
        "mutation ($e: String!, $p: String!) { register(input: {email: $e, password: $p}) "
        "{ accessToken } }",
        {"e": "new@example.com", "p": "password1"},
    )
    assert result.codes == ["BAD_USER_INPUT"]
    extensions = result.errors[0]["extensions"]
    assert extensions["field"] == "password"
    assert extensions["reason"] == "too_common"
    assert "too easy to guess" in result.errors[0]["message"]


async def test_hashing_work_beyond_the_queue_is_refused_at_once() -> None:
    passwords = Passwords(concurrency=1, queue=2)
    try:
        password_hash = await passwords.hash("correct horse battery")
        outcomes = await asyncio.gather(
            *(passwords.verify(password_hash, f"guess {i}") for i in range(10)),
            return_exceptions=True,
        )
        busy = [outcome for outcome in outcomes if isinstance(outcome, PasswordsBusy)]
        assert len(busy) == 7
        assert all(outcome is False for outcome in outcomes if outcome not in busy)
        assert busy[0].extensions == {"retryAfter": 1}
        assert passwords.pending == 0
        # The queue drains: new work is taken again.
        assert await passwords.verify(password_hash, "correct horse battery")
    finally:
        passwords.close()
