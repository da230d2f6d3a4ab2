"""What admins browse: users, a user's sessions and the audit log, in keyset-paged slices."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Generic, TypeVar

from api.access import Principal
from api.accounts import require_admin
from api.errors import AuthError, ErrorCode, bad_input
from api.pagination import check_first, decode_cursor, encode_cursor
from api.runtime import Keyturn
from api.users import MAX_EMAIL_LENGTH, parse_id
from models import AuditEvent, SessionStatus
from models import Session as SessionRow
from models import User as UserRow
from models.audit import events_page
from models.sessions import sessions_page, status_filter
from models.users import count_users, users_page

T = TypeVar("T")
MAX_SEARCH_LENGTH = 254
MAX_KINDS = 20


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    rows: list[T]
    cursors: list[str]
    has_next: bool


@dataclass(frozen=True, slots=True)
class CountedPage(Page[T]):
    """A page whose total is counted only if asked: a count reads every matching row, where the
    page reads its own, so it would make every page cost as much as the table is large."""

    count: Callable[[], Awaitable[int]]


async def _zero() -> int:
    return 0


def _time_key(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    key = decode_cursor(cursor, 2)
    if key is None:
        return None
    try:
        moment = datetime.fromisoformat(key[0])
        # Ours are UTC. Another offset at either end of the calendar (0001-01-01T00:00+05:00)
        # has no UTC time, which PostgreSQL's driver would find out only when sending it.
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        return moment, uuid.UUID(key[1])
    except (ValueError, OverflowError):
        raise bad_input("after", "after is not a valid cursor.") from None


def _text(value: str | None, field: str, limit: int) -> str | None:
    if value is not None and (len(value) > limit or "\x00" in value):
        raise bad_input(field, f"{field} must be at most {limit} characters, without NUL.")
    return value


async def list_users(
    actor: Principal, search: str | None, first: int, after: str | None
) -> CountedPage[UserRow]:
    require_admin(actor)
    check_first(first)
    search = _text(search, "search", MAX_SEARCH_LENGTH)
    key = decode_cursor(after, 1)
    if key is not None and len(key[0]) > MAX_EMAIL_LENGTH:  # an email: ours are no longer
        raise bad_input("after", "after is not a valid cursor.")
    rows = await users_page(search, first, key[0] if key else None)
    page = rows[:first]
    cursors = [encode_cursor(u.email) for u in page]
    return CountedPage(page, cursors, len(rows) > first, partial(count_users, search))


async def get_user(actor: Principal, user_id: str) -> UserRow | None:
    require_admin(actor)
    return await UserRow.get_or_none(id=parse_id(user_id, "id"))


async def list_user_sessions(
    kt: Keyturn,
    actor: Principal,
    user_id: str,
    statuses: list[SessionStatus],
    first: int,
    after: str | None,
) -> tuple[UserRow, CountedPage[SessionRow]]:
    require_admin(actor)
    check_first(first)
    user = await UserRow.get_or_none(id=parse_id(user_id, "userId"))
    if user is None:
        raise AuthError(ErrorCode.NOT_FOUND, "No such user.")
    key = _time_key(after)
    if not statuses:
        return user, CountedPage([], [], False, _zero)
    wanted = status_filter(set(statuses), user.token_version, kt.clock())
    rows = await sessions_page(user.id, wanted, first, key)
    page = rows[:first]
    cursors = [encode_cursor(s.created_at.isoformat(), s.id) for s in page]

    async def count() -> int:
        return await SessionRow.filter(wanted, user_id=user.id).count()

    return user, CountedPage(page, cursors, len(rows) > first, count)


async def list_audit_events(
    actor: Principal,
    user_id: str | None,
    kinds: list[str] | None,
    first: int,
    after: str | None,
) -> Page[AuditEvent]:
    require_admin(actor)
    check_first(first)
    uid = parse_id(user_id, "userId") if user_id is not None else None
    if kinds is not None:
        if len(kinds) > MAX_KINDS:
            raise bad_input("kinds", f"Give at most {MAX_KINDS} kinds.")
        for kind in kinds:
            _text(kind, "kinds", 40)
    key = _time_key(after)
    rows = await events_page(uid, kinds, first, key) if kinds != [] else []
    page = rows[:first]
    cursors = [encode_cursor(e.created_at.isoformat(), e.id) for e in page]
    return Page(page, cursors, len(rows) > first)
