"""Brute force against login, register, refresh and changePassword: counted per executed field.

Windows are real time (the limiter's storage keeps time, in Redis too); tests that wait for a
window to pass shorten it to one second with KEYTURN_LOGIN_FAILURE_WINDOW.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

import schema as schema_package
from api.ratelimit import MAX_LOCKOUT_FACTOR, lockout_seconds
from models import AuditEvent
from models import User as UserRow
from schema.limits import QueryDepthLimit
from tests.conftest import PASSWORD, AppFactory, Harness
from tests.security.conftest import (
    LOGIN,
    REFRESH,
    REGISTER,
    VerifyCounter,
    attempt,
    audit_kinds,
    make_accounts,
    retry_after,
)

WRONG = "not the password at all"


def aliased_logins(count: int) -> str:
    """`count` aliased logins sharing one input variable: about ten tokens each."""
    fields = " ".join(f"a{i}: login(input: $in) {{ accessToken }}" for i in range(count))
    return f"mutation ($in: LoginInput!) {{ {fields} }}"


def login_input(password: str = WRONG, email: str = "user@example.com") -> dict[str, object]:
    return {"in": {"email": email, "password": password, "refreshTokenDelivery": "BODY"}}


async def test_a_hundred_aliased_logins_are_refused_before_any_runs(
    api: Harness, user: UserRow, verifications: VerifyCounter
) -> None:
    result = await api.gql(aliased_logins(100), login_input())

    assert result.response.status_code == 200
    assert result.data is None
    assert set(result.codes) == {"BAD_USER_INPUT"}
    messages = " ".join(error["message"] for error in result.errors)
    assert "only one of login, register, refresh and changePassword" in messages
    assert "more than 15 aliases" in messages
    assert verifications.calls == 0
    assert not await AuditEvent.exclude(kind="user_created").exists()


async def test_a_hundred_logins_spelled_out_stop_at_the_token_limit(
    api: Harness, user: UserRow, verifications: VerifyCounter
) -> None:
    login = (
        f'login(input: {{email: "user@example.com", password: "{WRONG}", '
        "refreshTokenDelivery: BODY})"
    )
    fields = " ".join(f"a{i}: {login} {{ accessToken }}" for i in range(100))
    result = await api.gql(f"mutation {{ {fields} }}")

    assert result.codes == ["BAD_USER_INPUT"]
    assert "more than 2000 tokens" in result.errors[0]["message"]
    assert verifications.calls == 0


async def test_logins_copied_through_fragments_are_refused(
    api: Harness, user: UserRow, verifications: VerifyCounter
) -> None:
    login = f'login(input: {{email: "user@example.com", password: "{WRONG}"}}) {{ accessToken }}'
    documents = [
        # Two fragments, one login each.
        f"mutation {{ ...A ...B }} fragment A on Mutation {{ a: {login} }} "
        f"fragment B on Mutation {{ b: {login} }}",
        # One fragment spread twice, once through an inline fragment.
        f"mutation {{ ...A ... on Mutation {{ ...A }} }} fragment A on Mutation {{ {login} }}",
        # Nested fragments multiplying one login.
        f"mutation {{ ...A }} fragment A on Mutation {{ ...B ...B }} "
        f"fragment B on Mutation {{ {login} }}",
    ]
    for document in documents:
        result = await api.gql(document)
        assert result.codes == ["BAD_USER_INPUT"], (document, result)
        assert "only one of login" in result.errors[0]["message"]
    assert verifications.calls == 0


async def test_logins_copied_with_include_are_refused(
    api: Harness, user: UserRow, verifications: VerifyCounter
) -> None:
    login = f'login(input: {{email: "user@example.com", password: "{WRONG}"}}) {{ accessToken }}'
    for document in (
        f"mutation {{ a: {login} @include(if: true) b: {login} @include(if: true) }}",
        f"mutation {{ {login} @include(if: true) {login} @skip(if: false) }}",
        f"mutation ($yes: Boolean!) {{ a: {login} @include(if: $yes) b: {login} }}",
    ):
        result = await api.gql(document, {"yes": True})
        assert result.codes == ["BAD_USER_INPUT"], (document, result)
    assert verifications.calls == 0


async def test_a_single_login_through_a_fragment_still_runs(api: Harness, user: UserRow) -> None:
    document = (
        "mutation ($in: LoginInput!) { ...L } "
        "fragment L on Mutation { login(input: $in) { accessToken } }"
    )
    result = await api.gql(document, login_input(PASSWORD))
    assert result.data["login"]["accessToken"]


async def test_each_executed_login_field_counts_even_in_one_document(
    app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beneath the document rules, the throttle itself counts fields, not requests."""
    monkeypatch.setattr(schema_package, "validation_rules", lambda settings: [QueryDepthLimit])
    api = await app_factory(login_max_attempts_per_ip=3)
    await api.create_user()

    result = await api.gql(aliased_logins(5), login_input(PASSWORD))

    assert result.codes == ["RATE_LIMITED"]
    assert result.errors[0]["path"] == ["a3"]
    assert len(await audit_kinds("login_succeeded")) == 3
    assert (await attempt(api, "user@example.com", PASSWORD)).codes == ["RATE_LIMITED"]


async def test_a_json_array_batch_is_refused_with_a_json_error(
    api: Harness, user: UserRow, verifications: VerifyCounter
) -> None:
    operation = {"query": aliased_logins(1), "variables": login_input()}
    response = await api.client.post("/graphql", json=[operation] * 20)

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "Batching is off" in body["errors"][0]["message"]
    assert verifications.calls == 0


async def test_a_password_spray_from_one_address_is_cut_off(
    app_factory: AppFactory, verifications: VerifyCounter
) -> None:
    api = await app_factory(login_max_attempts_per_ip=20)
    emails = await make_accounts(api, 50)

    results = [await attempt(api, email, "Winter2024!") for email in emails]

    codes = [result.codes for result in results]
    assert codes[:20] == [["INVALID_CREDENTIALS"]] * 20
    assert codes[20:] == [["RATE_LIMITED"]] * 30
    assert all(0 < retry_after(result) <= 60 for result in results[20:])
    assert verifications.calls == 20
    # One audit event for the whole flood from that address in this window.
    limited = await audit_kinds("rate_limited")
    assert len(limited) == 1
    assert limited[0].detail["limit"] == "login_ip"
    assert limited[0].ip_address == "127.0.0.1"


async def test_an_account_locks_after_its_failures_even_for_the_right_password(
    app_factory: AppFactory,
) -> None:
    api = await app_factory(login_max_failures_per_account=3)
    await api.create_user()

    for _ in range(3):
        assert (await attempt(api, "user@example.com", WRONG)).codes == ["INVALID_CREDENTIALS"]
    locked = await attempt(api, "user@example.com", PASSWORD)

    assert 0 < retry_after(locked) <= 900
    assert locked.errors[0]["message"] == "Too many attempts: try again later."
    # Another account from the same address is not affected.
    await api.create_user("other@example.com")
    assert not (await attempt(api, "other@example.com", PASSWORD)).errors


async def test_text_that_is_not_unicode_is_refused_before_a_login_counts(
    app_factory: AppFactory,
) -> None:
    # JSON's escape for a lone surrogate (and the bytes that would spell one in UTF-8) decodes
    # to a string no encoder takes: before, argon2 failed on it inside the resolver, after the
    # attempt had been counted, so each such login was INTERNAL_SERVER_ERROR, wrote no
    # login_failed, and two of them locked the account out for its owner.
    api = await app_factory(login_max_failures_per_account=2)
    await api.create_user()
    query = json.dumps(LOGIN)
    bodies = [
        b'{"query": %s, "variables": {"e": "user@example.com", "p": "long enough \\ud800"}}',
        b'{"query": %s, "variables": {"e": "user@example.com", "p": "long enough \\uDFFF!"}}',
        b'{"query": %s, "variables": {"e": "user\\udc00@example.com", "p": "long enough"}}',
        b'{"query": %s, "variables": {"e": "user@example.com", "p": "long \xed\xa0\x80 x"}}',
        b'{"query": %s, "variables": {"e": "user@example.com", "p": "x", "\\ud800": 1}}',
    ]
    for body in bodies:
        response = await api.client.post(
            "/graphql",
            content=body % query.encode(),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 400, (body, response.text)
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
        assert "not Unicode text" in response.json()["errors"][0]["message"]

    # Nothing ran: no attempt counted against the account, nothing in the log.
    assert not await AuditEvent.filter(kind__in=["login_failed", "rate_limited"]).exists()
    assert not (await attempt(api, "user@example.com", PASSWORD)).errors
    # A pair of surrogates is one character, and welcome.
    paired = await api.client.post(
        "/graphql",
        content=b'{"query": %s, "variables": {"e": "user@example.com", "p": "pw \\ud83d\\ude00"}}'
        % query.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert paired.status_code == 200
    assert [e["extensions"]["code"] for e in paired.json()["errors"]] == ["INVALID_CREDENTIALS"]


async def test_the_lockout_ends_when_its_window_passes(app_factory: AppFactory) -> None:
    api = await app_factory(login_max_failures_per_account=2, login_failure_window=1)
    await api.create_user()

    for _ in range(2):
        await attempt(api, "user@example.com", WRONG)
    assert retry_after(await attempt(api, "user@example.com", PASSWORD)) == 1

    await asyncio.sleep(1.1)
    assert not (await attempt(api, "user@example.com", PASSWORD)).errors


async def test_repeated_lockouts_grow_longer_and_still_end(app_factory: AppFactory) -> None:
    api = await app_factory(login_max_failures_per_account=2, login_failure_window=1)
    await api.create_user()

    for _ in range(2):
        await attempt(api, "user@example.com", WRONG)
    assert retry_after(await attempt(api, "user@example.com", WRONG)) == 1
    await asyncio.sleep(1.1)

    # The second lockout of the day lasts two windows from the failure that caused it.
    for _ in range(2):
        assert (await attempt(api, "user@example.com", WRONG)).codes == ["INVALID_CREDENTIALS"]
    locked_at = time.monotonic()
    assert retry_after(await attempt(api, "user@example.com", PASSWORD)) == 2
    await asyncio.sleep(1.2)
    assert (await attempt(api, "user@example.com", PASSWORD)).codes == ["RATE_LIMITED"]
    await asyncio.sleep(max(0.0, 2.1 - (time.monotonic() - locked_at)))
    assert not (await attempt(api, "user@example.com", PASSWORD)).errors


def test_lockouts_double_up_to_a_bound() -> None:
    durations = [lockout_seconds(900, level) for level in range(1, 12)]
    assert durations[:4] == [900, 1800, 3600, 7200]
    assert max(durations) == 900 * MAX_LOCKOUT_FACTOR == 7200


async def test_unknown_and_known_emails_get_the_same_answers(
    app_factory: AppFactory, verifications: VerifyCounter
) -> None:
    api = await app_factory(login_max_failures_per_account=2)
    await api.create_user()

    answers = {}
    for email in ("user@example.com", "nobody@example.com"):
        first = await attempt(api, email, WRONG)
        second = await attempt(api, email, WRONG)
        locked = await attempt(api, email, WRONG)
        answers[email] = [
            [(e["message"], e["extensions"]) for e in result.errors] for result in (first, second)
        ] + [[(e["message"], e["extensions"]["code"]) for e in locked.errors]]
        assert 0 < retry_after(locked) <= 900

    assert answers["user@example.com"] == answers["nobody@example.com"]
    # Both cost the same: one verification per attempt that was not refused.
    assert verifications.calls == 4


async def test_email_variants_share_one_counter(app_factory: AppFactory) -> None:
    api = await app_factory(login_max_failures_per_account=3)
    await api.create_user()

    for variant in ("USER@example.com", "  user@EXAMPLE.com", "User@Example.Com\t"):
        assert (await attempt(api, variant, WRONG)).codes == ["INVALID_CREDENTIALS"]
    assert (await attempt(api, "user@example.com", PASSWORD)).codes == ["RATE_LIMITED"]


async def test_a_successful_login_clears_the_failures(app_factory: AppFactory) -> None:
    api = await app_factory(login_max_failures_per_account=3)
    await api.create_user()

    for _ in range(3):
        for _ in range(2):
            assert (await attempt(api, "user@example.com", WRONG)).codes == ["INVALID_CREDENTIALS"]
        assert not (await attempt(api, "user@example.com", PASSWORD)).errors


async def test_refusals_are_audited_once_per_key_and_window(app_factory: AppFactory) -> None:
    api = await app_factory(login_max_failures_per_account=2)
    known = await api.create_user()

    for _ in range(2):
        await attempt(api, "user@example.com", WRONG)
    for _ in range(10):
        assert (await attempt(api, "user@example.com", PASSWORD)).codes == ["RATE_LIMITED"]
    for _ in range(2):
        await attempt(api, "ghost@example.com", WRONG)
    for _ in range(10):
        await attempt(api, "ghost@example.com", WRONG)

    events = await audit_kinds("rate_limited")
    assert len(events) == 2
    by_email = {event.detail["email"]: event for event in events}
    assert by_email["user@example.com"].user_id == known.id
    assert by_email["ghost@example.com"].user_id is None
    assert all(event.detail["limit"] == "login_account" for event in events)
    assert all(event.detail["retry_after"] > 0 for event in events)


async def test_register_is_limited_per_address(app_factory: AppFactory) -> None:
    api = await app_factory(register_max_per_ip=2)

    for i in range(2):
        result = await api.gql(REGISTER, {"e": f"new{i}@example.com", "p": PASSWORD})
        assert not result.errors, result
    refused = await api.gql(REGISTER, {"e": "new9@example.com", "p": PASSWORD})
    assert 3000 < retry_after(refused) <= 3600
    assert not await UserRow.exists(email="new9@example.com")


async def test_refresh_is_limited_per_address(app_factory: AppFactory) -> None:
    api = await app_factory(refresh_max_per_ip=2)
    await api.create_user()
    tokens = await api.login()

    assert not (await api.gql(REFRESH, {"t": tokens["refreshToken"]})).errors
    assert (await api.gql(REFRESH, {"t": "garbage"})).codes == ["INVALID_REFRESH_TOKEN"]
    refused = await api.gql(REFRESH, {"t": tokens["refreshToken"]})
    assert 0 < retry_after(refused) <= 60


CHANGE_PASSWORD = """
  mutation ($c: String!, $n: String!) {
    changePassword(currentPassword: $c, newPassword: $n, refreshTokenDelivery: BODY) {
      accessToken
    }
  }
"""


async def test_wrong_current_passwords_lock_change_password(app_factory: AppFactory) -> None:
    api = await app_factory(login_max_failures_per_account=2)
    await api.create_user()
    token = (await api.login())["accessToken"]

    # A refused new password proves the current one: it does not count.
    for _ in range(3):
        weak = await api.gql(CHANGE_PASSWORD, {"c": PASSWORD, "n": "password1"}, token=token)
        assert weak.codes == ["BAD_USER_INPUT"]
    for _ in range(2):
        variables = {"c": WRONG, "n": "a brand new passphrase"}
        wrong = await api.gql(CHANGE_PASSWORD, variables, token=token)
        assert wrong.codes == ["INVALID_CREDENTIALS"]
        assert wrong.errors[0]["message"] == "The current password is wrong."
    variables = {"c": PASSWORD, "n": "a brand new passphrase"}
    locked = await api.gql(CHANGE_PASSWORD, variables, token=token)
    assert retry_after(locked) > 0


async def test_change_password_and_login_guesses_share_one_counter(
    app_factory: AppFactory,
) -> None:
    # They had a counter each: a stolen access token added the limit's guesses through
    # changePassword to those login allows, and none of them was in the audit log.
    api = await app_factory(login_max_failures_per_account=2)
    user = await api.create_user()
    signed_in = await api.login()
    variables = {"c": WRONG, "n": "a brand new passphrase"}
    wrong = await api.gql(CHANGE_PASSWORD, variables, token=signed_in["accessToken"])
    assert wrong.codes == ["INVALID_CREDENTIALS"]
    assert (await attempt(api, "user@example.com", WRONG)).codes == ["INVALID_CREDENTIALS"]

    assert retry_after(await attempt(api, "user@example.com", PASSWORD)) > 0
    variables = {"c": PASSWORD, "n": "a brand new passphrase"}
    locked = await api.gql(CHANGE_PASSWORD, variables, token=signed_in["accessToken"])
    assert retry_after(locked) > 0

    # The guess is a failed password check of the account, with the session that tried it.
    guessed = await AuditEvent.get(
        kind="login_failed", user_id=user.id, session_id=signed_in["session"]["id"]
    )
    assert guessed.detail == {"reason": "wrong_current_password"}


async def test_a_full_hashing_queue_answers_rate_limited(
    app_factory: AppFactory,
) -> None:
    api = await app_factory(password_hash_concurrency=1, password_hash_queue=1)

    results = await asyncio.gather(
        *(attempt(api, f"flood{i}@example.com", WRONG) for i in range(8))
    )

    codes = sorted(code for result in results for code in result.codes)
    assert codes.count("INVALID_CREDENTIALS") >= 2
    busy = [result for result in results if result.codes == ["RATE_LIMITED"]]
    assert busy, codes
    assert all(retry_after(result) == 1 for result in busy)
    assert api.kt.passwords.pending == 0
    events = await audit_kinds("rate_limited")
    assert [event.detail["limit"] for event in events] == ["password_hashing"]
