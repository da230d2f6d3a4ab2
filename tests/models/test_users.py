"""The users queries behind the admin `users` page: what they find, and the plans that keep a
page's cost independent of the number of users."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

import models.users
from api.db import connection, dialect_of
from models import User as UserRow
from models.email_sample import SAMPLE_TTL, email_sample
from models.users import (
    SEARCH_COUNT,
    SEARCHED_PAGE,
    SUFFIX_CHARS,
    count_users,
    searched_values,
    users_page,
    users_page_query,
)
from tests.conftest import Harness

USERS = 10_000

_PG_USERS = f"""
INSERT INTO users (id, email, password_hash, role, is_active, token_version, created_at,
                   updated_at)
SELECT gen_random_uuid(), 'user' || lpad(i::text, 7, '0') || '@example.test', 'x', 'user', true,
       0, now(), now()
FROM generate_series(1, {USERS}) AS i
"""  # noqa: S608 (a constant)
_SQLITE_USERS = f"""
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {USERS})
INSERT INTO users (id, email, password_hash, role, is_active, token_version, created_at,
                   updated_at)
SELECT printf('00000000-0000-4000-8000-%012x', i), printf('user%07d@example.test', i), 'x',
       'user', 1, 0, '2026-01-01 00:00:00+00:00', '2026-01-01 00:00:00+00:00'
FROM s
"""  # noqa: S608 (a constant)


def email_of(index: int) -> str:
    return f"user{index:07d}@example.test"


@pytest.fixture
async def many_users(api: Harness, database_url: str) -> str:
    """USERS users, written by the database itself."""
    conn = connection(database_url)
    postgres = dialect_of(database_url) == "postgres"
    await conn.execute_script(_PG_USERS if postgres else _SQLITE_USERS)
    # As autovacuum leaves a table after a load: statistics, and on PostgreSQL the GIN index's
    # pending list merged (the planner prices an index with a long one as a scan of it).
    await conn.execute_script("VACUUM ANALYZE users" if postgres else "ANALYZE users")
    return database_url


async def plan(database_url: str, query: QuerySet[UserRow]) -> str:
    conn = connection(database_url)
    sql = query.sql(params_inline=True)
    if dialect_of(database_url) == "postgres":
        _, rows = await conn.execute_query(f"EXPLAIN {sql}")
        return "\n".join(row["QUERY PLAN"] for row in rows)
    _, rows = await conn.execute_query(f"EXPLAIN QUERY PLAN {sql}")
    return "\n".join(row["detail"] for row in rows)


async def test_a_page_after_a_cursor_walks_the_email_index(many_users: str) -> None:
    page = await users_page(None, 20, email_of(5000))

    assert [u.email for u in page] == [email_of(i) for i in range(5001, 5022)]
    explained = await plan(many_users, users_page_query(20, email_of(5000)))
    if dialect_of(many_users) == "postgres":
        assert "Index Scan using users_email_key" in explained, explained
        assert "Sort" not in explained, explained
    else:
        assert "USING INDEX sqlite_autoindex_users" in explained, explained
        assert "TEMP B-TREE" not in explained, explained


async def test_a_search_finds_every_user_whose_email_contains_it(many_users: str) -> None:
    page = await users_page("0001234@EXAMPLE", 20, None)
    assert [u.email for u in page] == [email_of(1234)]
    assert await count_users("user00012") == 100  # user0001200 to user0001299
    assert await count_users("@example.test") == USERS


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_selective_search_uses_the_suffix_index_on_postgres(many_users: str) -> None:
    """The suffixes that begin with the text are found by the GIN index on the email's
    suffixes, for the page and for the count, whatever the text and whatever plan it gets."""
    conn = connection(many_users)
    # A rare text, and one every email holds: shown the second, the planner would rather scan
    # `users` and build every user's suffixes (92 ms here, against 3 by the index).
    cases = [
        (statement, searched_values("postgres", text), more)
        for text in ("0001234", "@example.test")
        for statement, more in ((SEARCHED_PAGE, ["", 21]), (SEARCH_COUNT, []))
    ]
    for statement, values, more in cases:
        sql = statement["postgres"].sql(conn)
        given = ", ".join(
            str(value) if isinstance(value, int) else "'" + value.replace("'", "''") + "'"
            for value in [*values, *more]
        )
        # A custom plan, made for these values, and a generic one, made for any values, as a
        # prepared statement may get after a few runs.
        for mode in ("auto", "force_generic_plan"):
            async with in_transaction() as tx:
                await tx.execute_script(f"SET LOCAL plan_cache_mode = {mode}")
                await tx.execute_script(f"PREPARE searched AS {sql}")
                _, rows = await tx.execute_query(f"EXPLAIN EXECUTE searched({given})")
                await tx.execute_script("DEALLOCATE searched")
            explained = "\n".join(row["QUERY PLAN"] for row in rows)
            assert "Bitmap Index Scan on idx_users_email_suffixes" in explained, (mode, explained)
            assert "Seq Scan" not in explained, (mode, explained)


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_selective_search_reads_a_range_of_the_suffix_table_on_sqlite(
    many_users: str,
) -> None:
    conn = connection(many_users)
    values = searched_values("sqlite", "0001234")
    for statement, more in ((SEARCHED_PAGE, ["", 21]), (SEARCH_COUNT, [])):
        _, rows = await conn.execute_query(
            f"EXPLAIN QUERY PLAN {statement['sqlite'].sql(conn)}", [*values, *more]
        )
        explained = "\n".join(row["detail"] for row in rows)
        assert "SEARCH users_email_suffixes USING PRIMARY KEY (suffix>? AND suffix<?)" in (
            explained
        ), explained
        assert "SCAN users" not in explained, explained


async def test_the_index_keeps_suffixes_of_as_many_characters_as_the_search_asks_for(
    api: Harness, database_url: str
) -> None:
    """The migrations write the length of a kept suffix; models/users.py asks for it. Were
    they to differ, a text longer than the kept suffixes would find nobody."""
    conn = connection(database_url)
    email = "a-rather-long-local-part.of.an.address@example.com"
    if dialect_of(database_url) == "postgres":
        rows = await conn.execute_query_dict(
            "SELECT max(length(l)) AS n FROM unnest(tsvector_to_array(keyturn_email_suffixes($1)))"
            " AS l",
            [email],
        )
    else:
        await api.create_user(email)
        rows = await conn.execute_query_dict(
            'SELECT max(length("suffix")) AS "n" FROM "users_email_suffixes"'
        )
    assert rows[0]["n"] == SUFFIX_CHARS


async def test_the_sample_tells_a_common_text_from_a_rare_one(many_users: str) -> None:
    """Every email here begins `user000` and ends `@example.test`."""
    sample = await email_sample(connection(many_users))
    assert len(sample.emails) >= 640
    assert sample.share("use") == 1.0
    assert sample.share("@example.test") == 1.0
    assert sample.share("234") < 0.05
    assert sample.share("zoe.quinn") == 0.0


async def test_a_sample_of_emails_is_taken_again_when_it_is_old(
    api: Harness, many_users: str
) -> None:
    conn = connection(many_users)
    now = [1000.0]
    first = await email_sample(conn, lambda: now[0])
    assert first.share("zzz") == 0.0
    created = api.clock()
    await UserRow.bulk_create(  # a third of the users, from now on, hold `zzz`
        UserRow(
            email=f"zzz{n}@example.test", password_hash="x", created_at=created, updated_at=created
        )
        for n in range(USERS // 2)
    )
    now[0] += SAMPLE_TTL - 1
    assert await email_sample(conn, lambda: now[0]) is first
    now[0] += 1
    again = await email_sample(conn, lambda: now[0])
    assert again is not first
    assert 0.2 < again.share("zzz") < 0.5


# What a search finds, whichever way it goes: a walk of the email index that fills the page, or
# the suffix index (PostgreSQL's GIN index on keyturn_email_suffixes, SQLite's table
# users_email_suffixes) asked for the suffixes that begin with the text, its candidates matched
# against the whole.

ODD_EMAILS = [
    "john_doe@example.org",
    "johnxdoe@example.org",
    "100%real@example.org",
    "100xreal@example.org",
    "back\\slash@example.org",
    "zoe.quinn@example.org",
    "ZOE.QUINN.second@example.org",
    "quinn.zoe@example.org",
    "o'brien\\x:*&|!(y)@example.org",  # a tsquery's own syntax, and `'` and `\`
    "zoë.😀.émile@example.org",  # characters of two, three and four bytes
    "a-local-part-longer-than-sixteen@example.org",
]
SEARCHES = [
    "john_doe",  # `_` is a character, not a wildcard
    "100%real",  # and so is `%`
    "k\\s",  # and `\`
    "zoe.quinn",
    "ZOE.Quinn",
    "quinn",
    "  quinn  ",
    "@example.org",
    "0001",  # many matches, spread over the emails
    "user00012",  # a hundred, together
    "0001234",  # one
    "qu",  # two characters
    "z",  # and one
    "o'b",
    "'",
    "\\x:*",
    "&|!(",
    "ë.😀.é",
    "😀",
    "longer-than-sixteen@ex",  # past the kept suffixes: their first sixteen characters
    "longer-than-sixteen@nowhere",  # whose candidates the whole text rules out
    "user0001234@example.test",
    "nobody.at.all",
]


async def test_a_search_finds_exactly_the_emails_that_contain_it(
    api: Harness, many_users: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = api.clock()
    for email in ODD_EMAILS:  # some are no valid address: written as they are, past the API
        await UserRow.create(email=email.lower(), password_hash="x", created_at=now, updated_at=now)
    emails = sorted([e.lower() for e in ODD_EMAILS] + [email_of(i) for i in range(1, USERS + 1)])
    for walk in (2000, 3):  # a walk that fills pages where it runs; one too short to ever run
        monkeypatch.setattr(models.users, "SEARCH_WALK", walk)
        for search in SEARCHES:
            text = search.strip().lower()
            expected = [e for e in emails if text in e]
            assert await count_users(search) == len(expected), (walk, search)
            found: list[str] = []
            after: str | None = None
            while True:  # every page, each from the last one's last email
                page = await users_page(search, 40, after)
                found += [u.email for u in page[:40]]
                if len(page) <= 40:
                    break
                after = page[39].email
            assert found == expected, (walk, search)


class Refused:
    def __init__(self, why: str) -> None:
        self.why = why

    def __getitem__(self, dialect: str) -> Refused:  # as a statement by dialect
        return self

    async def rows(self, *args: object) -> None:
        raise AssertionError(self.why)


async def test_a_page_of_a_text_many_emails_hold_comes_from_the_walk(
    many_users: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the suffix index's query at all, such a page is still answered: the walk of
    the email index filled it. (`user0001` is held by a tenth of the users.)"""
    monkeypatch.setattr(models.users, "SEARCHED_PAGE", Refused("the walk should fill the page"))
    page = await users_page("user0001", 20, email_of(1150))
    assert [u.email for u in page] == [email_of(i) for i in range(1151, 1172)]


async def test_a_walk_that_comes_up_short_leaves_the_page_to_the_index(
    api: Harness, many_users: str
) -> None:
    """The walk runs (`user0001` is held by a tenth of the users) and finds the last nine of its
    run after the cursor; the rest of the page lies far beyond the walk, where only the index
    finds it."""
    now = api.clock()
    late = [f"zz{n}.user0001@example.test" for n in range(3)]
    for email in late:
        await UserRow.create(email=email, password_hash="x", created_at=now, updated_at=now)
    page = await users_page("user0001", 20, email_of(1990))
    assert [u.email for u in page] == [email_of(i) for i in range(1991, 2000)] + late


async def test_a_page_of_a_rare_text_skips_the_walk(
    many_users: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No sampled email holds it: a walk of SEARCH_WALK emails would find next to nothing."""
    monkeypatch.setattr(models.users, "WALKED_PAGE", Refused("a rare text should not walk"))
    assert [u.email for u in await users_page("0001234", 20, None)] == [email_of(1234)]
    assert [u.email for u in await users_page("user00012", 20, None)] == [
        email_of(i) for i in range(1200, 1221)
    ]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_rare_search_on_sqlite_is_answered_by_the_suffix_table(many_users: str) -> None:
    """Emptied, the table answers nothing: a search the walk cannot fill finds nobody, while
    one the walk fills still finds its page."""
    conn = connection(many_users)
    await conn.execute_script('DELETE FROM "users_email_suffixes"')
    assert [u.email for u in await users_page("user0001", 20, email_of(999))] == [
        email_of(i) for i in range(1000, 1021)
    ]
    assert await users_page("0009876", 20, None) == []
    assert await count_users("0009876") == 0
    assert await UserRow.filter(email__contains="0009876").count() == 1  # the users are there


async def test_the_suffix_index_follows_new_users_changed_emails_and_deletions(
    api: Harness, database_url: str
) -> None:
    conn = connection(database_url)
    user = await api.create_user("first.name@example.com")
    assert [u.id for u in await users_page("first.name", 20, None)] == [user.id]

    await UserRow.filter(id=user.id).update(email="second.name@example.com")
    assert [u.email for u in await users_page("second.name", 20, None)] == [
        "second.name@example.com"
    ]
    assert await users_page("first.name", 20, None) == []
    assert await count_users("first.name") == 0

    await UserRow.filter(id=user.id).delete()
    assert await users_page("second.name", 20, None) == []
    assert await count_users("second.name") == 0
    if dialect_of(database_url) == "sqlite":  # nothing left behind by either
        rows = await conn.execute_query_dict('SELECT COUNT(*) AS "n" FROM "users_email_suffixes"')
        assert rows[0]["n"] == 0


# The number of users, kept by triggers on `users` (migrations `users_count`).


async def kept_and_counted(database_url: str) -> tuple[int, int]:
    conn = connection(database_url)
    kept = await conn.execute_query_dict('SELECT "users" FROM "users_count"')
    counted = await conn.execute_query_dict('SELECT COUNT(*) AS "n" FROM "users"')
    return int(kept[0]["users"]), int(counted[0]["n"])


async def test_the_kept_number_of_users_follows_every_insert_and_delete(
    api: Harness, database_url: str
) -> None:
    conn = connection(database_url)
    postgres = dialect_of(database_url) == "postgres"
    assert await kept_and_counted(database_url) == (0, 0)

    for n in range(3):
        await api.create_user(f"one{n}@example.com")
    assert await kept_and_counted(database_url) == (3, 3)

    await conn.execute_script(_PG_USERS if postgres else _SQLITE_USERS)  # one bulk statement
    assert await kept_and_counted(database_url) == (USERS + 3, USERS + 3)

    async def insert_then_fail() -> None:
        async with in_transaction(dialect_of(database_url)):
            await api.create_user("rolled.back@example.com")
            raise RuntimeError("undo")

    with pytest.raises(RuntimeError):
        await insert_then_fail()
    assert await kept_and_counted(database_url) == (USERS + 3, USERS + 3)

    await conn.execute_script("DELETE FROM users WHERE email LIKE 'user00001%'")
    assert await kept_and_counted(database_url) == (USERS + 3 - 100, USERS + 3 - 100)

    await conn.execute_script("DELETE FROM users")
    assert await kept_and_counted(database_url) == (0, 0)

    if postgres:
        await api.create_user("again@example.com")
        await conn.execute_script("TRUNCATE users CASCADE")
        assert await kept_and_counted(database_url) == (0, 0)


@pytest.mark.parametrize("backend", ["postgres"])
async def test_concurrent_inserts_on_postgres_keep_the_number_exact(
    api: Harness, database_url: str
) -> None:
    """Transactions inserting users at once, each holding on a moment before it commits: they
    take turns on the count's row (an insert waits for the one before it to commit), and none
    is lost."""
    url = database_url.replace("postgres://", "postgresql://", 1)
    connections = [await asyncpg.connect(url) for _ in range(12)]

    async def insert(conn: asyncpg.Connection, n: int) -> None:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO users (id, email, password_hash, role, is_active, token_version,"
                " created_at, updated_at) VALUES (gen_random_uuid(), $1, 'x', 'user', true, 0,"
                " now(), now())",
                f"concurrent{n}@example.com",
            )
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(
            asyncio.gather(*(insert(c, n) for n, c in enumerate(connections))), 30
        )
    finally:
        for conn in connections:
            await conn.close()

    assert await kept_and_counted(database_url) == (12, 12)
