"""The `users` table."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from enum import StrEnum

from tortoise import BaseDBAsyncClient, fields
from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet

from models.statements import Row, Statement, decode, select_list
from models.trigrams import email_sample, indexed_part


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class User(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    email = fields.CharField(max_length=254, unique=True)
    password_hash = fields.CharField(max_length=255)
    role = fields.CharEnumField(Role, max_length=16, default=Role.USER)
    is_active = fields.BooleanField(default=True)
    token_version = fields.IntField(default=0)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    last_login_at = fields.DatetimeField(null=True)
    password_changed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "users"
        indexes = (("created_at", "id"),)

    def __str__(self) -> str:
        return self.email


def normalize_email(email: str) -> str:
    return email.strip().lower()


def search_users(search: str | None) -> QuerySet[User]:
    """Users whose email contains `search`, in any case.

    Emails are stored lower-cased, so a case-sensitive LIKE on the lower-cased text is a
    case-insensitive search, and the column stays bare: PostgreSQL's trigram index on `email`
    (migrations/postgres, users_email_trigram) serves `email LIKE '%text%'` for three characters
    or more, where `icontains` (UPPER(email) LIKE UPPER(...)) would read every row. A search of
    three characters or more does not come here: its pages and its count go through the
    statements below (`users_page`, `count_users`), on both databases.
    """
    query = User.all()
    if search:
        query = query.filter(email__contains=normalize_email(search))
    return query


async def count_users(search: str | None) -> int:
    """How many users `search_users` finds. All of them: the one-row count that triggers on
    `users` keep exact (migrations `users_count`), since COUNT(*) would read every user."""
    if search:
        text = _trigram_text(search)
        if text is None:
            return await search_users(search).count()
        conn = User._meta.db
        statement = SEARCH_COUNT[conn.capabilities.dialect]
        rows = await statement.rows(conn, await searched_values(conn, text))
        return int(rows[0]["n"])
    rows = await User._meta.db.execute_query_dict('SELECT "users" FROM "users_count"')
    return int(rows[0]["users"])


def users_page_query(search: str | None, first: int, after_email: str | None) -> QuerySet[User]:
    """Users by email, one page after `after_email`, plus one row to tell if more follow.

    Without a search: a walk of the unique index on `email` from the cursor, stopped at the page
    size, whatever the number of users.
    """
    query = search_users(search)
    if after_email is not None:
        query = query.filter(email__gt=after_email)
    return query.order_by("email").limit(first + 1)


async def users_page(search: str | None, first: int, after_email: str | None) -> list[User]:
    text = _trigram_text(search)
    if text is not None:
        return await _searched_page(text, first, after_email or "")
    return await users_page_query(search, first, after_email)


# A page of a search first walks the email index from the cursor, SEARCH_WALK emails at most:
# a text that many emails hold (a domain, a common prefix) fills its page there. Otherwise the
# trigram index answers: PostgreSQL's (pg_trgm) or SQLite's FTS5 table with the trigram
# tokenizer (migrations/sqlite, users_email_search), asked for the emails like the part of the
# text whose trigrams are worth reading (models/trigrams.py; `%` and `_` in it stay wildcards
# there, so it finds at least every match). Each candidate is then matched against the whole
# text in `users` itself, so the answer is exact whatever the index holds.

SEARCH_WALK = 500
"""Emails a page of a search reads in order before it asks the trigram index. Its candidates
for a text that many emails hold are thousands, read and sorted before the first page; the walk
finds such a page in the first few hundred emails."""

# Column names from the model's own metadata, never from a caller: nothing to inject.
WALKED_PAGE = Statement(
    lambda: (
        f'SELECT {select_list(User, "users", "")} FROM "users" WHERE "email" IN ('  # noqa: S608
        ' SELECT "email" FROM ('
        '  SELECT "email" FROM "users" WHERE "email" > ? ORDER BY "email" LIMIT ?'
        " ) AS walked WHERE \"email\" LIKE ? ESCAPE '\\' LIMIT ?"
        ') ORDER BY "email"'
    )
)
# The candidates, by dialect, then the whole text matched, escaped. On PostgreSQL the exact
# match is a `strpos`, which no index serves (a second LIKE would add the whole text's trigrams
# to the index's work again), and the candidates are a subquery the planner keeps as it is
# (OFFSET 0): a plan made for any text might otherwise walk the email index in order and test
# every user.
_FROM_CANDIDATES = {
    "sqlite": (
        'FROM "users" WHERE "id" IN (SELECT "id" FROM "users_email_search" WHERE "email" LIKE ?)'
        " AND \"email\" LIKE ? ESCAPE '\\'"
    ),
    "postgres": (
        'FROM (SELECT * FROM "users" WHERE "email" LIKE ? ESCAPE \'\\\' OFFSET 0) AS "users"'
        ' WHERE strpos("email", ?) > 0'
    ),
}


def _searched_page_sql(dialect: str) -> str:
    return (
        f"SELECT {select_list(User, 'users', '')} {_FROM_CANDIDATES[dialect]}"
        ' AND "email" > ? ORDER BY "email" LIMIT ?'
    )


def _search_count_sql(dialect: str) -> str:
    return f'SELECT COUNT(*) AS "n" {_FROM_CANDIDATES[dialect]}'


SEARCHED_PAGE = {d: Statement(functools.partial(_searched_page_sql, d)) for d in _FROM_CANDIDATES}
SEARCH_COUNT = {d: Statement(functools.partial(_search_count_sql, d)) for d in _FROM_CANDIDATES}


def _trigram_text(search: str | None) -> str | None:
    """The text of a search that a trigram index can serve (three characters or more, as
    stored: trimmed and lower-cased); None for no search or a shorter one, which walks the
    email index instead."""
    text = normalize_email(search) if search else ""
    return text if len(text) >= 3 else None


def _like(text: str) -> str:
    """`LIKE` pattern (with `ESCAPE '\\'`) of the emails that contain `text`, as it is."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def searched_values(conn: BaseDBAsyncClient, text: str) -> list[str]:
    """The parameters of `_FROM_CANDIDATES`: the candidates' pattern, then the whole text's."""
    part = indexed_part(text, (await email_sample(conn)).share)
    if conn.capabilities.dialect == "postgres":
        return [_like(part), text]
    # The trigram table's pattern keeps its wildcards: it finds at least every match.
    return [f"%{part}%", _like(text)]


async def _searched_page(text: str, first: int, after_email: str) -> list[User]:
    conn = User._meta.db
    rows: Sequence[Row] = ()
    # The walk only where it may fill the page: a text held by fewer sampled emails would find
    # less than half a page in it (a rare text's walk cost more than its index's answer).
    if (await email_sample(conn)).share(text) * SEARCH_WALK >= (first + 1) / 2:
        rows = await WALKED_PAGE.rows(conn, [after_email, SEARCH_WALK, _like(text), first + 1])
    if len(rows) <= first:  # the walk did not fill the page: the index has the whole answer
        values = [*await searched_values(conn, text), after_email, first + 1]
        rows = await SEARCHED_PAGE[conn.capabilities.dialect].rows(conn, values)
    return [decode(User, row, "") for row in rows]


async def lock_with_admins(uid: uuid.UUID) -> tuple[User | None, int]:
    """The user `uid` and the count of the other active admins, all their rows locked until
    the transaction ends, in one statement and in the order of their ids.

    Two admins removing each other at once must lock the same rows in the same order, or
    PostgreSQL ends one of them as a deadlock; locking the target first and the others after
    took them in opposite orders. (SQLite has no row locks; its single writer serialises the
    transactions instead.)
    """
    rows = (
        await User.filter(Q(id=uid) | Q(role=Role.ADMIN, is_active=True))
        .order_by("id")
        .select_for_update(no_key=True)
    )
    target = next((row for row in rows if row.id == uid), None)
    return target, len(rows) - (target is not None and is_active_admin(target))


def is_active_admin(user: User) -> bool:
    return user.role is Role.ADMIN and user.is_active
