"""The admin API: who may use it, listing and paging, revocation, activation, roles, audit."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

import asyncpg
import pytest
from tortoise.transactions import in_transaction

from api.accounts import _locked_user
from api.db import connection
from models import AuditEvent, Role
from models import Session as SessionRow
from models import User as UserRow
from tests.conftest import LOGIN, PASSWORD, Harness

ADMIN_EMAIL = "admin@example.com"

USERS = """
query ($search: String, $first: Int!, $after: String) {
  users(search: $search, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id email role isActive activeSessionCount } }
  }
}
"""
USER = "query ($id: ID!) { user(id: $id) { id email tokenVersion } }"
USER_SESSIONS = """
query ($id: ID!, $status: [SessionStatus!]!, $first: Int!, $after: String) {
  userSessions(userId: $id, status: $status, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { id status revokedAt revokedReason isCurrent userAgent ipAddress
                   user { email activeSessionCount } } }
  }
}
"""
AUDIT = """
query ($userId: ID, $kinds: [String!], $first: Int!, $after: String) {
  auditEvents(userId: $userId, kinds: $kinds, first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { id kind createdAt sessionId ipAddress userAgent detail
                   user { email } actor { email } } }
  }
}
"""
CREATE_USER = """
mutation ($email: String!, $role: Role!) {
  createUser(input: {email: $email, password: "a fine password", role: $role}) { id email role }
}
"""
REVOKE_SESSION = "mutation ($id: ID!) { revokeSession(sessionId: $id) { id status revokedReason } }"
REVOKE_USER = "mutation ($id: ID!) { revokeUserSessions(userId: $id) { id tokenVersion } }"
SET_ACTIVE = """
mutation ($id: ID!, $a: Boolean!) {
  setUserActive(userId: $id, isActive: $a) { isActive tokenVersion }
}
"""
SET_ROLE = "mutation ($id: ID!, $r: Role!) { setUserRole(userId: $id, role: $r) { role } }"
ME = "{ me { id } }"
REFRESH = "mutation ($t: String) { refresh(refreshToken: $t) { refreshToken } }"


@pytest.fixture
async def admin_token(api: Harness) -> str:
    await api.create_user(ADMIN_EMAIL, role=Role.ADMIN)
    return str((await api.login(ADMIN_EMAIL))["accessToken"])


def admin_fields(target: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (USERS, {"first": 5}),
        (USER, {"id": target}),
        (USER_SESSIONS, {"id": target, "status": ["ACTIVE"], "first": 5}),
        (AUDIT, {"first": 5}),
        (CREATE_USER, {"email": "new@example.com", "role": "ADMIN"}),
        (REVOKE_SESSION, {"id": str(uuid.uuid4())}),
        (REVOKE_USER, {"id": target}),
        (SET_ACTIVE, {"id": target, "a": False}),
        (SET_ROLE, {"id": target, "r": "ADMIN"}),
    ]


async def test_every_admin_field_refuses_anonymous_and_ordinary_users(
    api: Harness, user: UserRow, admin_token: str
) -> None:
    token = (await api.login())["accessToken"]
    for query, variables in admin_fields(str(user.id)):
        anonymous = await api.gql(query, variables)
        assert anonymous.codes == ["UNAUTHENTICATED"], query
        assert not any((anonymous.data or {}).values())  # null, or {"user": null}
        ordinary = await api.gql(query, variables, token=token)
        assert ordinary.codes == ["FORBIDDEN"], query
        assert not any((ordinary.data or {}).values())
    # Nothing changed on the way.
    target = await UserRow.get(id=user.id)
    assert (target.role, target.is_active, target.token_version) == (Role.USER, True, 0)
    assert not await UserRow.filter(email="new@example.com").exists()


async def test_every_admin_field_works_for_an_admin(
    api: Harness, user: UserRow, admin_token: str
) -> None:
    for query, variables in admin_fields(str(user.id)):
        result = await api.gql(query, variables, token=admin_token)
        if query is REVOKE_SESSION:
            assert result.codes == ["NOT_FOUND"]
        else:
            assert not result.errors, (query, result.errors)


async def test_a_demoted_admin_is_refused_at_the_next_request(api: Harness) -> None:
    await api.create_user(ADMIN_EMAIL, role=Role.ADMIN)
    second = await api.create_user("second@example.com", role=Role.ADMIN)
    boss = (await api.login(ADMIN_EMAIL))["accessToken"]
    demoted = (await api.login("second@example.com"))["accessToken"]
    assert not (await api.gql(USERS, {"first": 5}, token=demoted)).errors
    result = await api.gql(SET_ROLE, {"id": str(second.id), "r": "USER"}, token=boss)
    assert result.data["setUserRole"]["role"] == "USER"
    # The token still says "admin"; the database says otherwise.
    assert (await api.gql(USERS, {"first": 5}, token=demoted)).codes == ["FORBIDDEN"]
    event = await AuditEvent.get(kind="role_changed")
    assert event.detail == {"from": "admin", "to": "user"}


async def test_users_search_and_paging_walks_every_row_once(api: Harness, admin_token: str) -> None:
    for n in range(23):
        await api.create_user(f"person{n:02d}@example.com")
    await api.create_user("someone@else.org")
    seen: list[str] = []
    after = None
    while True:
        page = (
            await api.gql(
                USERS, {"search": "EXAMPLE.COM", "first": 10, "after": after}, token=admin_token
            )
        ).data["users"]
        assert page["totalCount"] == 24  # 23 people and the admin
        seen += [edge["node"]["email"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) == 24
    assert seen == sorted(seen)
    assert "someone@else.org" not in seen


def count_queries(records: list[logging.LogRecord]) -> list[str]:
    """The counts among the statements tortoise logged: COUNT queries, and reads of the
    maintained number of users."""
    return [
        message
        for record in records
        if record.name == "tortoise.db_client"
        and ("COUNT(" in (message := record.getMessage()).upper() or '"users_count"' in message)
    ]


async def test_a_users_page_counts_only_when_total_count_is_selected(
    api: Harness, admin_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The count reads every matching user, the page only its own: a client that does not show
    the total must not pay for it."""
    for n in range(3):
        await api.create_user(f"counted{n}@example.com")
    rows_only = """
    query ($search: String) {
      users(search: $search, first: 2) { pageInfo { hasNextPage } edges { node { email } } }
    }
    """
    counted = """
    query ($search: String) {
      users(search: $search, first: 2) { totalCount edges { node { email } } }
    }
    """
    for search in (None, "counted"):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
            page = await api.gql(rows_only, {"search": search}, token=admin_token)
        assert not page.errors, page.errors
        assert len(page.data["users"]["edges"]) == 2
        assert count_queries(caplog.records) == []

        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
            page = await api.gql(counted, {"search": search}, token=admin_token)
        assert not page.errors, page.errors
        assert page.data["users"]["totalCount"] == (4 if search is None else 3)
        assert len(count_queries(caplog.records)) == 1


async def test_a_user_sessions_page_counts_only_when_total_count_is_selected(
    api: Harness, user: UserRow, admin_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(3):
        await api.login()
    query = """
    query ($id: ID!) {
      userSessions(userId: $id, first: 2) { %s pageInfo { hasNextPage } edges { node { id } } }
    }
    """
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
        page = await api.gql(query % "", {"id": str(user.id)}, token=admin_token)
    assert not page.errors, page.errors
    assert page.data["userSessions"]["pageInfo"]["hasNextPage"] is True
    assert count_queries(caplog.records) == []

    counted = await api.gql(query % "totalCount", {"id": str(user.id)}, token=admin_token)
    assert counted.data["userSessions"]["totalCount"] == 3


async def test_users_search_matches_any_part_of_the_email_in_any_case(
    api: Harness, admin_token: str
) -> None:
    for email in ("ann_marie@example.com", "annamarie@example.com", "bob@sample.org"):
        await api.create_user(email)

    async def found(search: str) -> set[str]:
        result = await api.gql(USERS, {"search": search, "first": 10}, token=admin_token)
        assert not result.errors, result.errors
        page = result.data["users"]
        emails = {edge["node"]["email"] for edge in page["edges"]}
        assert page["totalCount"] == len(emails)
        return emails

    assert await found("MARIE@Ex") == {"ann_marie@example.com", "annamarie@example.com"}
    assert await found("  nn_M ") == {"ann_marie@example.com"}  # trimmed, any case
    assert await found("ample.") == {
        ADMIN_EMAIL,
        "ann_marie@example.com",
        "annamarie@example.com",
        "bob@sample.org",
    }
    assert await found("b@s") == {"bob@sample.org"}
    # LIKE's wildcards are plain characters in a search.
    assert await found("n_m") == {"ann_marie@example.com"}
    assert await found("%") == set()
    assert await found("nobody") == set()


async def test_paging_under_concurrent_inserts_never_repeats_or_skips(
    api: Harness, admin_token: str
) -> None:
    originals = {f"m{n:02d}@example.com" for n in range(20)}
    for email in originals:
        await api.create_user(email)
    seen: list[str] = []
    after = None
    inserted = 0
    while True:
        page = (await api.gql(USERS, {"first": 6, "after": after}, token=admin_token)).data["users"]
        seen += [edge["node"]["email"] for edge in page["edges"]]
        # Rows land before and after the cursor while the walk goes on.
        await api.create_user(f"a{inserted}@example.com")
        await api.create_user(f"z{inserted}@example.com")
        inserted += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen))
    assert originals <= set(seen)


@pytest.mark.parametrize("first", [0, -1, 101])
async def test_first_out_of_range(api: Harness, admin_token: str, first: int) -> None:
    result = await api.gql(USERS, {"first": first}, token=admin_token)
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.errors[0]["extensions"]["field"] == "first"


async def test_bad_cursor_and_huge_first(api: Harness, admin_token: str) -> None:
    bad = await api.gql(USERS, {"first": 5, "after": "!!not-a-cursor"}, token=admin_token)
    assert bad.codes == ["BAD_USER_INPUT"]
    huge = await api.gql(USERS, {"first": 2**40}, token=admin_token)
    assert huge.codes == ["BAD_USER_INPUT"]


async def test_user_by_id(api: Harness, user: UserRow, admin_token: str) -> None:
    found = await api.gql(USER, {"id": str(user.id)}, token=admin_token)
    assert found.data["user"]["email"] == "user@example.com"
    unknown = await api.gql(USER, {"id": str(uuid.uuid4())}, token=admin_token)
    assert unknown.data == {"user": None}
    assert not unknown.errors
    malformed = await api.gql(USER, {"id": "42"}, token=admin_token)
    assert malformed.codes == ["BAD_USER_INPUT"]


async def test_user_sessions_filter_by_derived_status(
    api: Harness, user: UserRow, admin_token: str
) -> None:
    revoked = await api.login(headers={"User-Agent": "Revoked"})
    await api.gql(
        "mutation ($t: String) { logout(refreshToken: $t) }", {"t": revoked["refreshToken"]}
    )
    await api.login(headers={"User-Agent": "Expired"})
    api.clock.advance(8 * 86400)
    active = await api.login(headers={"User-Agent": "Active"})
    admin_token = (await api.login(ADMIN_EMAIL))["accessToken"]  # the first one expired

    async def listed(*statuses: str) -> dict[str, Any]:
        result = await api.gql(
            USER_SESSIONS,
            {"id": str(user.id), "status": list(statuses), "first": 50},
            token=admin_token,
        )
        assert not result.errors, result.errors
        return {e["node"]["userAgent"]: e["node"] for e in result.data["userSessions"]["edges"]}

    assert set(await listed("ACTIVE")) == {"Active"}
    assert set(await listed("EXPIRED")) == {"Expired"}
    assert set(await listed("REVOKED")) == {"Revoked"}
    assert set(await listed("ACTIVE", "REVOKED")) == {"Active", "Revoked"}
    everything = await listed("ACTIVE", "EXPIRED", "REVOKED")
    assert everything["Revoked"]["revokedReason"] == "logout"
    assert everything["Active"]["user"]["activeSessionCount"] == 1
    assert everything["Active"]["isCurrent"] is False

    # A tokenVersion bump ends the active one: it lists as REVOKED, reason sessions_revoked,
    # with the bump's time. The one that had expired before stays EXPIRED: the bump did not
    # end it (it listed as REVOKED, and the EXPIRED filter lost it).
    api.clock.advance(60)
    await api.gql(REVOKE_USER, {"id": str(user.id)}, token=admin_token)
    assert await listed("ACTIVE") == {}
    now_revoked = await listed("REVOKED")
    assert set(now_revoked) == {"Revoked", "Active"}
    assert now_revoked["Active"]["revokedReason"] == "sessions_revoked"
    assert now_revoked["Active"]["status"] == "REVOKED"
    assert now_revoked["Active"]["revokedAt"] == api.clock.now.isoformat()
    assert active["session"]["id"] == now_revoked["Active"]["id"]
    expired = (await listed("EXPIRED"))["Expired"]
    assert (expired["status"], expired["revokedAt"], expired["revokedReason"]) == (
        "EXPIRED",
        None,
        None,
    )

    # A session whose version is not its user's but carries no stamp (a login that raced the
    # bump, or a row from before bumps stamped) is REVOKED while unexpired, then EXPIRED.
    await SessionRow.filter(id=active["session"]["id"]).update(revoked_at=None, revoked_reason=None)
    unstamped = (await listed("REVOKED"))["Active"]
    assert (unstamped["status"], unstamped["revokedReason"]) == ("REVOKED", "sessions_revoked")
    api.clock.advance(8 * 86400)
    admin_token = (await api.login(ADMIN_EMAIL))["accessToken"]
    assert set(await listed("EXPIRED")) == {"Expired", "Active"}


async def test_user_sessions_paging_and_errors(
    api: Harness, user: UserRow, admin_token: str
) -> None:
    ids = set()
    for _ in range(7):
        ids.add((await api.login())["session"]["id"])
    seen: list[str] = []
    after = None
    while True:
        result = await api.gql(
            USER_SESSIONS,
            {"id": str(user.id), "status": ["ACTIVE"], "first": 3, "after": after},
            token=admin_token,
        )
        page = result.data["userSessions"]
        assert page["totalCount"] == 7
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == 7
    assert set(seen) == ids
    unknown = await api.gql(
        USER_SESSIONS,
        {"id": str(uuid.uuid4()), "status": ["ACTIVE"], "first": 3},
        token=admin_token,
    )
    assert unknown.codes == ["NOT_FOUND"]
    malformed = await api.gql(
        USER_SESSIONS, {"id": "nope", "status": ["ACTIVE"], "first": 3}, token=admin_token
    )
    assert malformed.codes == ["BAD_USER_INPUT"]


async def test_a_page_of_fifty_sessions_costs_a_fixed_number_of_queries(
    api: Harness, user: UserRow, admin_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(50):
        await api.login()

    admin = await UserRow.get(email=ADMIN_EMAIL)

    async def count_queries(first: int) -> int:
        api.kt.access.forget_user(admin.id)  # both runs pay for the access check alike
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
            result = await api.gql(
                USER_SESSIONS,
                {"id": str(user.id), "status": ["ACTIVE"], "first": first},
                token=admin_token,
            )
        assert not result.errors
        assert len(result.data["userSessions"]["edges"]) == first
        return sum(
            1
            for record in caplog.records
            if record.name == "tortoise.db_client"
            and record.getMessage().lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE"))
        )

    small, large = await count_queries(2), await count_queries(50)
    # The same queries whatever the page size: DataLoaders batch Session.user and the counts.
    assert large == small
    assert large <= 6


async def test_revoke_session_as_admin(api: Harness, user: UserRow, admin_token: str) -> None:
    login = await api.login()
    result = await api.gql(
        REVOKE_SESSION,
        {"id": login["session"]["id"]},
        token=admin_token,
        headers={"User-Agent": "AdminConsole/1"},
    )
    assert result.data["revokeSession"]["status"] == "REVOKED"
    assert result.data["revokeSession"]["revokedReason"] == "admin"
    assert (await api.gql(ME, token=login["accessToken"])).codes == ["TOKEN_REVOKED"]
    assert (await api.gql(REFRESH, {"t": login["refreshToken"]})).codes == ["INVALID_REFRESH_TOKEN"]
    event = await AuditEvent.get(kind="session_revoked").prefetch_related("actor")
    assert event.actor is not None
    assert event.actor.email == ADMIN_EMAIL
    assert event.user_id == user.id
    assert event.user_agent == "AdminConsole/1"
    assert event.ip_address == "127.0.0.1"
    malformed = await api.gql(REVOKE_SESSION, {"id": "x"}, token=admin_token)
    assert malformed.codes == ["BAD_USER_INPUT"]


async def test_revoke_user_sessions_concurrently_bumps_exactly_twice(
    api: Harness, user: UserRow, admin_token: str
) -> None:
    logins = [await api.login() for _ in range(3)]
    results = await asyncio.gather(
        *(api.gql(REVOKE_USER, {"id": str(user.id)}, token=admin_token) for _ in range(2))
    )
    assert all(not r.errors for r in results)
    assert (await UserRow.get(id=user.id)).token_version == 2
    for login in logins:
        assert (await api.gql(ME, token=login["accessToken"])).codes == ["TOKEN_REVOKED"]
        assert (await api.gql(REFRESH, {"t": login["refreshToken"]})).codes == [
            "INVALID_REFRESH_TOKEN"
        ]
    assert await AuditEvent.filter(kind="user_sessions_revoked", user_id=user.id).count() == 2


async def test_deactivation_ends_sessions_and_blocks_login(
    api: Harness, user: UserRow, admin_token: str
) -> None:
    login = await api.login()
    off = await api.gql(SET_ACTIVE, {"id": str(user.id), "a": False}, token=admin_token)
    assert off.data["setUserActive"] == {"isActive": False, "tokenVersion": 1}
    assert (await api.gql(ME, token=login["accessToken"])).codes == ["TOKEN_REVOKED"]
    refused = await api.gql(LOGIN, {"email": "user@example.com", "password": PASSWORD, "d": "BODY"})
    assert refused.codes == ["ACCOUNT_DISABLED"]

    on = await api.gql(SET_ACTIVE, {"id": str(user.id), "a": True}, token=admin_token)
    assert on.data["setUserActive"] == {"isActive": True, "tokenVersion": 1}
    # Reactivation does not revive the old session.
    assert (await api.gql(REFRESH, {"t": login["refreshToken"]})).codes == ["INVALID_REFRESH_TOKEN"]
    await api.login()
    kinds = await AuditEvent.filter(
        user_id=user.id, kind__in=["user_deactivated", "user_activated"]
    ).count()
    assert kinds == 2


async def test_the_last_active_admin_cannot_be_demoted_or_deactivated(api: Harness) -> None:
    boss = await api.create_user(ADMIN_EMAIL, role=Role.ADMIN)
    token = (await api.login(ADMIN_EMAIL))["accessToken"]
    for query, variables in (
        (SET_ROLE, {"id": str(boss.id), "r": "USER"}),
        (SET_ACTIVE, {"id": str(boss.id), "a": False}),
    ):
        result = await api.gql(query, variables, token=token)
        assert result.codes == ["BAD_USER_INPUT"]
        assert "last active admin" in result.errors[0]["message"]
    still = await UserRow.get(id=boss.id)
    assert (still.role, still.is_active) == (Role.ADMIN, True)


@pytest.mark.parametrize(
    ("first", "second"),
    [("demote", "demote"), ("deactivate", "deactivate"), ("demote", "deactivate")],
)
async def test_two_admins_removing_each_other_at_once_leave_one(
    api: Harness, first: str, second: str
) -> None:
    # Each removal locked its target, then the other admins: on PostgreSQL the two locked in
    # opposite orders, and the loser got INTERNAL_SERVER_ERROR (a deadlock) instead of the
    # last-admin answer.
    change = {
        "demote": lambda uid: (SET_ROLE, {"id": uid, "r": "USER"}),
        "deactivate": lambda uid: (SET_ACTIVE, {"id": uid, "a": False}),
    }
    for round_ in range(4):
        one = await api.create_user(f"one{round_}@example.com", role=Role.ADMIN)
        two = await api.create_user(f"two{round_}@example.com", role=Role.ADMIN)
        t1 = (await api.login(f"one{round_}@example.com"))["accessToken"]
        t2 = (await api.login(f"two{round_}@example.com"))["accessToken"]
        results = await asyncio.gather(
            api.gql(*change[first](str(two.id)), token=t1),
            api.gql(*change[second](str(one.id)), token=t2),
        )
        assert await UserRow.filter(role=Role.ADMIN, is_active=True).count() == 1
        assert sorted(len(r.errors) for r in results) == [0, 1]
        refused = next(r for r in results if r.errors)
        # The loser hears that the other is the last admin, or, when the winner's change
        # reached it before its own check did, that it is no longer an admin (demoted) or no
        # longer signed in (deactivated).
        assert refused.codes in (["BAD_USER_INPUT"], ["FORBIDDEN"], ["TOKEN_REVOKED"]), refused
        # The next round starts from no admin at all.
        await UserRow.filter(role=Role.ADMIN).update(role=Role.USER)


@pytest.mark.parametrize("backend", ["postgres"])
@pytest.mark.parametrize("removing_an_admin", [False, True])
async def test_locking_a_user_to_change_it_never_blocks_writes_that_only_refer_to_it(
    api: Harness, database_url: str, removing_an_admin: bool
) -> None:
    # FOR UPDATE on the user blocked every insert whose foreign key names it (an audit event,
    # as a rotation or a logout of that user writes), so a deactivation, which then updates
    # the user's sessions, deadlocked with a rotation that held one of them: the rotation, or
    # the admin, got INTERNAL_SERVER_ERROR. FOR NO KEY UPDATE leaves those inserts free.
    user = await api.create_user()
    other = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        async with in_transaction("postgres"):
            await _locked_user(user.id, removing_an_admin=removing_an_admin)
            insert = other.execute(
                "INSERT INTO audit_events (id, created_at, kind, user_id) "
                "VALUES ($1, now(), 'refreshed', $2)",
                uuid.uuid4(),
                user.id,
            )
            await asyncio.wait_for(insert, timeout=2)
    finally:
        await other.close()


async def test_create_user(api: Harness, admin_token: str) -> None:
    result = await api.gql(
        CREATE_USER, {"email": " New@Example.com ", "role": "ADMIN"}, token=admin_token
    )
    created = result.data["createUser"]
    assert created["email"] == "new@example.com"
    assert created["role"] == "ADMIN"
    await api.login("new@example.com", "a fine password")
    duplicate = await api.gql(
        CREATE_USER, {"email": "new@example.com", "role": "USER"}, token=admin_token
    )
    assert duplicate.codes == ["BAD_USER_INPUT"]
    assert duplicate.errors[0]["extensions"]["field"] == "email"
    event = await AuditEvent.get(kind="user_created", user_id=created["id"]).prefetch_related(
        "actor"
    )
    assert event.actor is not None
    assert event.actor.email == ADMIN_EMAIL


async def test_audit_log_newest_first_with_filters_and_actors(
    api: Harness, user: UserRow, admin_token: str
) -> None:
    for _ in range(3):
        api.clock.advance(1)
        await api.login()
    api.clock.advance(1)
    await api.gql(REVOKE_USER, {"id": str(user.id)}, token=admin_token)

    result = await api.gql(AUDIT, {"userId": str(user.id), "first": 50}, token=admin_token)
    nodes = [e["node"] for e in result.data["auditEvents"]["edges"]]
    assert [n["kind"] for n in nodes] == [
        "user_sessions_revoked",
        *["login_succeeded"] * 3,
        "user_created",
    ]
    times = [n["createdAt"] for n in nodes]
    assert times == sorted(times, reverse=True)
    assert nodes[0]["actor"]["email"] == ADMIN_EMAIL
    assert nodes[0]["user"]["email"] == "user@example.com"
    assert json.loads(nodes[0]["detail"]) == {"token_version": 1}
    assert nodes[1]["actor"] is None
    assert nodes[1]["sessionId"]

    logins_only = await api.gql(
        AUDIT, {"kinds": ["login_succeeded"], "first": 2}, token=admin_token
    )
    page = logins_only.data["auditEvents"]
    assert len(page["edges"]) == 2
    assert page["pageInfo"]["hasNextPage"] is True
    rest = await api.gql(
        AUDIT,
        {"kinds": ["login_succeeded"], "first": 50, "after": page["pageInfo"]["endCursor"]},
        token=admin_token,
    )
    remaining = rest.data["auditEvents"]["edges"]
    assert len(remaining) == 2  # four logins in all: three of the user's, one of the admin's
    assert rest.data["auditEvents"]["pageInfo"]["hasNextPage"] is False

    # Given, even empty, a filter filters: no kinds match no event (as no statuses match no
    # session), and an empty id is a malformed one. Before, both meant "no filter".
    none = await api.gql(AUDIT, {"kinds": [], "first": 50}, token=admin_token)
    assert none.data["auditEvents"]["edges"] == []
    assert none.data["auditEvents"]["pageInfo"]["hasNextPage"] is False
    empty_id = await api.gql(AUDIT, {"userId": "", "first": 50}, token=admin_token)
    assert empty_id.codes == ["BAD_USER_INPUT"]
    assert empty_id.errors[0]["extensions"]["field"] == "userId"


async def test_cli_revoke_sessions_matches_the_api(api: Harness, user: UserRow) -> None:
    from api.accounts import revoke_user_sessions_by_email

    login = await api.login()
    await revoke_user_sessions_by_email("USER@example.com", clock=api.clock)
    api.kt.access.forget_user(user.id)
    assert (await api.gql(ME, token=login["accessToken"])).codes == ["TOKEN_REVOKED"]
    event = await AuditEvent.get(kind="user_sessions_revoked")
    assert event.detail == {"actor": "cli", "token_version": 1}
    assert event.actor_id is None


async def test_ordinary_users_see_only_their_own_sessions(api: Harness, user: UserRow) -> None:
    await api.create_user("other@example.com")
    await api.login("other@example.com")
    mine = await api.login()
    result = await api.gql("{ mySessions { user { email } } }", token=mine["accessToken"])
    assert {s["user"]["email"] for s in result.data["mySessions"]} == {"user@example.com"}
    assert await SessionRow.all().count() == 2


async def test_the_total_of_all_users_is_the_kept_number(
    api: Harness, database_url: str, admin_token: str
) -> None:
    """Proof that `totalCount` without a search reads the kept number, not COUNT(*): set apart,
    the two answers differ. A search still counts its matches."""
    for n in range(4):
        await api.create_user(f"kept{n}@example.com")
    await connection(database_url).execute_script('UPDATE "users_count" SET "users" = 12345')
    query = "query ($s: String) { users(search: $s, first: 1) { totalCount } }"

    everyone = await api.gql(query, {"s": None}, token=admin_token)
    searched = await api.gql(query, {"s": "kept"}, token=admin_token)

    assert everyone.data["users"]["totalCount"] == 12345
    assert searched.data["users"]["totalCount"] == 4
