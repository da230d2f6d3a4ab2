"""The `users` table."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from enum import StrEnum

from tortoise import fields
from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet

from models.email_sample import email_sample
from models.statements import Row, Statement, decode, select_list


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


async def count_users(search: str | None) -> int:
    """How many users' emails contain `search` (in any case: emails are stored lower-cased),
    through the suffix index; without a search, the one-row count that triggers on `users`
    keep exact (migrations `users_count`), since COUNT(*) would read every user."""
    text = _searched_text(search)
    if text is not None:
        conn = User._meta.db
        statement = SEARCH_COUNT[conn.capabilities.dialect]
        rows = await statement.rows(conn, searched_values(conn.capabilities.dialect, text))
        return int(rows[0]["n"])
    rows = await User._meta.db.execute_query_dict('SELECT "users" FROM "users_count"')
    return int(rows[0]["users"])


def users_page_query(first: int, after_email: str | None) -> QuerySet[User]:
    """Users by email, one page after `after_email`, plus one row to tell if more follow: a
    walk of the unique index on `email` from the cursor, stopped at the page size, whatever the
    number of users. (A page of a search is `_searched_page`.)"""
    query = User.all()
    if after_email is not None:
        query = query.filter(email__gt=after_email)
    return query.order_by("email").limit(first + 1)


async def users_page(search: str | None, first: int, after_email: str | None) -> list[User]:
    text = _searched_text(search)
    if text is not None:
        return await _searched_page(text, first, after_email or "")
    return await users_page_query(first, after_email)


# A page of a search first walks the email index from the cursor, SEARCH_WALK emails at most:
# a text that many emails hold (a domain, a common prefix) fills its page there. Otherwise the
# suffix index answers (migrations `users_email_suffixes`): a text is in an email exactly when
# it begins one of the email's suffixes, so the suffixes that begin with it, cut to
# SUFFIX_CHARS, name just the emails that contain it (those that contain its first SUFFIX_CHARS
# characters, when it is longer), found in one range of a B-tree (SQLite's table
# users_email_suffixes) or of a GIN index (PostgreSQL's expression index on
# keyturn_email_suffixes(email)), whatever the number of users. Each candidate is then matched
# against the whole text in `users` itself, so the answer is exact whatever the index holds.

SEARCH_WALK = 500
"""Emails a page of a search reads in order before it asks the suffix index. Its candidates
for a text that many emails hold are thousands, read and sorted before the first page; the walk
finds such a page in the first few hundred emails."""

SUFFIX_CHARS = 16
"""Characters of each suffix the index keeps (the migrations `users_email_suffixes` write it)."""

_LAST_CHARACTER = "\U0010ffff"
"""The last Unicode code point: UTF-8 orders bytes as code points, so on SQLite's B-tree every
suffix that begins with a key sorts before the key followed by SUFFIX_CHARS of it."""

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
# The candidates, by dialect, then the whole text matched (`instr`, `strpos`: no wildcards to
# escape). On PostgreSQL the candidates are a subquery the planner keeps as it is (OFFSET 0): a
# plan made for any text might otherwise walk the email index in order and test every user. Its
# query is made by the database (keyturn_email_suffix_query cuts the text as the index does) in
# a sub-select, which the planner cannot see into: shown a text that most emails hold, it
# would scan `users` and build every user's suffixes (92 ms at 10,000 users against 3 by the
# index), where the index reads only the matches' entries.
_FROM_CANDIDATES = {
    "sqlite": (
        'FROM "users" WHERE "email" IN (SELECT "email" FROM "users_email_suffixes"'
        ' WHERE "suffix" BETWEEN ? AND ?) AND instr("email", ?) > 0'
    ),
    "postgres": (
        'FROM (SELECT * FROM "users" WHERE keyturn_email_suffixes("email")'
        ' @@ (SELECT keyturn_email_suffix_query(?)) OFFSET 0) AS "users"'
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


def _searched_text(search: str | None) -> str | None:
    """The text of a search as emails are stored (trimmed and lower-cased); None for none."""
    text = normalize_email(search) if search else ""
    return text or None


def _like(text: str) -> str:
    """`LIKE` pattern (with `ESCAPE '\\'`) of the emails that contain `text`, as it is."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def searched_values(dialect: str, text: str) -> list[str]:
    """The parameters of `_FROM_CANDIDATES`: the suffixes that begin with the text's first
    SUFFIX_CHARS characters (on PostgreSQL the database cuts the text), then the whole text."""
    if dialect == "postgres":
        return [text, text]
    key = text[:SUFFIX_CHARS]
    return [key, key + _LAST_CHARACTER * (SUFFIX_CHARS - len(key)), text]


async def _searched_page(text: str, first: int, after_email: str) -> list[User]:
    conn = User._meta.db
    rows: Sequence[Row] = ()
    # The walk only where it may fill the page: a text held by fewer sampled emails would find
    # less than half a page in it (a rare text's walk cost more than its index's answer).
    if (await email_sample(conn)).share(text) * SEARCH_WALK >= (first + 1) / 2:
        rows = await WALKED_PAGE.rows(conn, [after_email, SEARCH_WALK, _like(text), first + 1])
    if len(rows) <= first:  # the walk did not fill the page: the index has the whole answer
        values = [*searched_values(conn.capabilities.dialect, text), after_email, first + 1]
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
