"""The `sessions` table: one row per login on one device, the family of its refresh tokens."""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from tortoise import fields
from tortoise.expressions import F, Q
from tortoise.functions import Count
from tortoise.models import Model
from tortoise.queryset import QuerySet

from models.audit import EVENT_COLUMNS, INSERT_EVENT, AuditEvent
from models.keyset import newest_first
from models.statements import (
    OneTripTransactions,
    Row,
    Statement,
    decode,
    decode_values,
    encode,
    encode_row,
    provides,
    select_list,
)
from models.users import Role, User


class Session(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="sessions", on_delete=fields.CASCADE
    )
    token_version = fields.IntField()
    current_token_id = fields.UUIDField()
    previous_token_id = fields.UUIDField(null=True)
    rotated_at = fields.DatetimeField()
    created_at = fields.DatetimeField()
    last_used_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    absolute_expires_at = fields.DatetimeField()
    ip_address = fields.CharField(max_length=45, null=True)
    user_agent = fields.CharField(max_length=512, null=True)
    revoked_at = fields.DatetimeField(null=True)
    revoked_reason = fields.CharField(max_length=32, null=True)

    user_id: uuid.UUID

    class Meta:
        table = "sessions"
        indexes = (("user_id", "created_at", "id"),)


class SessionStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


# A session ended by a bump of its user's token_version.
VERSION_BUMP_REASON = "sessions_revoked"


async def bump_token_version(user_id: uuid.UUID, now: datetime) -> int:
    """Raise the user's token_version by one in SQL (no lost updates); returns the new value.

    That one write ends every session that began at an older version, whatever their number:
    the access check and refresh compare versions. In the same transaction, the sessions it
    ended while they were live get their `revoked_at` (now) and reason for the listings, so
    that one that had already expired stays EXPIRED and one it ended says when.
    """
    await User.filter(id=user_id).update(token_version=F("token_version") + 1, updated_at=now)
    version = (await User.get(id=user_id).only("id", "token_version")).token_version
    await Session.filter(
        user_id=user_id,
        token_version=version - 1,
        revoked_at__isnull=True,
        expires_at__gt=now,
        absolute_expires_at__gt=now,
    ).update(revoked_at=now, revoked_reason=VERSION_BUMP_REASON)
    return version


def session_status(session: Session, user_token_version: int, now: datetime) -> SessionStatus:
    """REVOKED when revoked (a bump stamps the sessions it ends); EXPIRED past either expiry;
    REVOKED too when its version is not its user's (a login that raced a bump); else ACTIVE."""
    if session.revoked_at is not None:
        return SessionStatus.REVOKED
    if now >= session.expires_at or now >= session.absolute_expires_at:
        return SessionStatus.EXPIRED
    if session.token_version != user_token_version:
        return SessionStatus.REVOKED
    return SessionStatus.ACTIVE


def revoked_reason(session: Session, user_token_version: int, now: datetime) -> str | None:
    if session.revoked_reason is not None:
        return session.revoked_reason
    if session_status(session, user_token_version, now) is SessionStatus.REVOKED:
        return VERSION_BUMP_REASON
    return None


def active_sessions(user_id: uuid.UUID, token_version: int, now: datetime) -> QuerySet[Session]:
    return Session.filter(
        user_id=user_id,
        token_version=token_version,
        revoked_at__isnull=True,
        expires_at__gt=now,
        absolute_expires_at__gt=now,
    )


def _session_and_user(selected: str) -> str:
    # Column names from the models' own metadata, never from a caller: nothing to inject.
    return (
        f"SELECT {selected} FROM "  # noqa: S608
        '"sessions" s JOIN "users" u ON u."id" = s."user_id" WHERE s."id" = ?'
    )


_SESSION_WITH_USER = Statement(
    lambda: _session_and_user(f"{select_list(Session, 's', 's_')}, {select_list(User, 'u', 'u_')}")
)
# What the access check needs: the session's end, its user's state and the user's public fields.
STATE_SESSION_COLUMNS = (
    "user_id",
    "token_version",
    "revoked_at",
    "expires_at",
    "absolute_expires_at",
)
STATE_USER_COLUMNS = ("is_active", "token_version", "role", "email", "created_at", "last_login_at")
_SESSION_STATE = Statement(
    lambda: _session_and_user(
        f"{select_list(Session, 's', 's_', STATE_SESSION_COLUMNS)}, "
        f"{select_list(User, 'u', 'u_', STATE_USER_COLUMNS)}"
    )
)


async def session_state(session_id: uuid.UUID) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The access check's one query: those columns of a session and of its user, by id."""
    rows = await _SESSION_STATE.lookup(Session._meta.db, encode(Session, ("id", session_id)))
    if not rows:
        return None
    row = rows[0]
    return (
        decode_values(Session, row, "s_", STATE_SESSION_COLUMNS),
        decode_values(User, row, "u_", STATE_USER_COLUMNS),
    )


async def session_with_user(session_id: uuid.UUID) -> tuple[Session, User] | None:
    """A session and its user in one query (read by refresh when it judges a token)."""
    rows = await _SESSION_WITH_USER.rows(Session._meta.db, encode(Session, ("id", session_id)))
    if not rows:
        return None
    return decode(Session, rows[0], "s_"), decode(User, rows[0], "u_")


@dataclass(frozen=True, slots=True)
class Rotation:
    """A refresh of the session's current token: what must hold, and what it writes."""

    session_id: uuid.UUID
    user_id: uuid.UUID
    presented_token_id: uuid.UUID
    token_version: int
    new_token_id: uuid.UUID
    issued_at: datetime
    expires_at: datetime
    now: datetime

    def values(self) -> list[Any]:
        """The parameters of `_ROTATE_SQL`, in its order."""
        return encode_row(
            Session,
            _ROTATION_FIELDS,
            (
                self.new_token_id,
                self.presented_token_id,
                self.issued_at,
                self.issued_at,
                self.expires_at,
                self.session_id,
                self.user_id,
                self.presented_token_id,
                self.token_version,
                self.now,
                self.now,
            ),
        )


# What a rotation writes, in `Rotation.values`' order. No index may cover any of these: on
# PostgreSQL the rotation is then a heap-only update that touches no index (see the migration
# rotation_writes_unindexed), and on SQLite it rewrites no index entry.
ROTATED_COLUMNS = (
    "current_token_id",
    "previous_token_id",
    "rotated_at",
    "last_used_at",
    "expires_at",
)
# The fields that encode `Rotation.values`, in `_ROTATE_SQL`'s order: what it sets, then what
# it compares (`_SESSION_ALIVE`).
_ROTATION_FIELDS = (
    *ROTATED_COLUMNS,
    "id",
    "user_id",
    "current_token_id",
    "token_version",
    "expires_at",
    "absolute_expires_at",
)
# Where the session's id is among them: a rotation reads its session back by it.
_ROTATION_ID = _ROTATION_FIELDS.index("id")
# The compare-and-set of the current token, only while the session is alive: not revoked, not
# expired, of the token's user and version, and that user active and still at that version.
_SET_ROTATED = ", ".join(f'"{column}" = ?' for column in ROTATED_COLUMNS)
_SESSION_ALIVE = (
    's."id" = ? AND s."user_id" = ? AND s."current_token_id" = ? AND s."token_version" = ? '
    'AND s."revoked_at" IS NULL AND s."expires_at" > ? AND s."absolute_expires_at" > ?'
)
_USER_ALIVE = 'u."id" = s."user_id" AND u."is_active" AND u."token_version" = s."token_version"'
# PostgreSQL: the user joined, so that the statement can return its row too.
_ROTATE_SQL = (
    f'UPDATE "sessions" AS s SET {_SET_ROTATED} '  # noqa: S608 (names from the constants above)
    f'FROM "users" AS u WHERE {_SESSION_ALIVE} AND {_USER_ALIVE}'
)
# SQLite: the same condition, the user in a subquery. Its UPDATE ... FROM cost about 25 µs a
# rotation on the event loop against 19 for this (bench: the statements alone, in a loop).
_ROTATE = Statement(
    lambda: (
        f'UPDATE "sessions" AS s SET {_SET_ROTATED} '  # noqa: S608
        f'WHERE {_SESSION_ALIVE} AND EXISTS (SELECT 1 FROM "users" AS u WHERE {_USER_ALIVE})'
    )
)


def _rotate_and_record_sql() -> str:
    # PostgreSQL: one statement. The update returns the rows it changed, joined; the event is
    # inserted from its result, so both happen or neither. The event's parameters are cast to
    # their columns' types, which PostgreSQL cannot infer in a SELECT list (the base type: a
    # cast to VARCHAR(n) would silently cut a longer value). It answers exactly one row, of
    # NULLs when nothing was rotated, so that grouped executions' rows pair with their callers.
    fields = AuditEvent._meta.fields_map
    casts = ", ".join(
        f"CAST(? AS {fields[name].get_for_dialect('postgres', 'SQL_TYPE').split('(')[0]})"
        for name in EVENT_COLUMNS
    )
    quoted = ", ".join(f'"{name}"' for name in EVENT_COLUMNS)
    returning = f"{select_list(Session, 's', 's_')}, {select_list(User, 'u', 'u_')}"
    return (
        f"WITH rotated AS ({_ROTATE_SQL} RETURNING {returning}), "  # noqa: S608
        f'recorded AS (INSERT INTO "audit_events" ({quoted}) SELECT {casts} FROM rotated) '
        "SELECT rotated.* FROM (SELECT 1) AS one LEFT JOIN rotated ON TRUE"
    )


ROTATE_AND_RECORD = Statement(_rotate_and_record_sql)


class Rotated:
    """The row a rotation wrote, joined with its user: the role at hand for the access token,
    the models decoded the first time they are asked for (see `api.auth.AuthResult`)."""

    __slots__ = ("_models", "_row", "role")

    def __init__(self, row: Row) -> None:
        self._row = row
        self._models: tuple[User, Session] | None = None
        self.role: Role = decode_values(User, row, "u_", ("role",))["role"]

    def user_and_session(self) -> tuple[User, Session]:
        if self._models is None:
            self._models = decode(User, self._row, "u_"), decode(Session, self._row, "s_")
        return self._models


async def rotate_refresh_token(rotation: Rotation, event: list[Any]) -> Rotated | None:
    """Compare-and-set the session's current refresh token id and record `event`
    (`event_values`) with it, atomically; the session as written and its user when this caller
    won, None when the token was not current or the session not alive (nothing is written).

    SQLite ignores SELECT ... FOR UPDATE and PostgreSQL's READ COMMITTED would let two readers
    both see the same current id, so the row count of this conditional UPDATE is the lock. It
    runs on every refresh, so the whole of it is one round trip: on PostgreSQL one statement,
    on SQLite one trip to the connection's thread (where RETURNING cannot name a joined table,
    so the row is read back inside the transaction). Concurrent rotations share their trip and
    their commit on both: grouped on PostgreSQL, group commit on SQLite.
    """
    values = rotation.values()
    conn = Session._meta.db
    if conn.capabilities.dialect == "postgres":
        row = await ROTATE_AND_RECORD.grouped_row(conn, values + event)
        return Rotated(row) if row["s_id"] is not None else None
    if not provides(type(conn), OneTripTransactions):
        raise TypeError(f"{type(conn).__name__} cannot run a transaction in one trip")
    rotate, record, read = (
        _ROTATE.sql(conn),
        INSERT_EVENT.sql(conn),
        _SESSION_WITH_USER.sql(conn),
    )
    key = [values[_ROTATION_ID]]

    def rotate_and_record(db: sqlite3.Connection) -> list[sqlite3.Row]:
        if db.execute(rotate, values).rowcount != 1:
            return []
        db.execute(record, event)
        # Rows as SQLite gives them, read by column name like a dict: copying each into a
        # dict cost the loop about 6 µs a rotation.
        return db.execute(read, key).fetchall()

    rows = await cast(OneTripTransactions, conn).run_in_transaction(rotate_and_record)
    return Rotated(cast(Row, rows[0])) if rows else None


async def revoke_session(
    session_id: uuid.UUID, reason: str, now: datetime, user_token_version: int
) -> bool:
    """Revoke a live session; False when it had already ended.

    The first end wins: a session already revoked, or ended by a token_version bump (whose
    reason stays `sessions_revoked`), is left as it is.
    """
    updated = await Session.filter(
        id=session_id, revoked_at__isnull=True, token_version=user_token_version
    ).update(revoked_at=now, revoked_reason=reason)
    return updated == 1


async def delete_dead_sessions(dead_before: datetime, batch_size: int) -> int:
    """Delete one batch of sessions that ended before `dead_before`; returns how many."""
    ids = (
        await Session.filter(
            Q(expires_at__lt=dead_before)
            | Q(absolute_expires_at__lt=dead_before)
            | Q(revoked_at__lt=dead_before)
        )
        .limit(batch_size)
        .values_list("id", flat=True)
    )
    if not ids:
        return 0
    return await Session.filter(id__in=list(ids)).delete()


async def count_active_sessions(
    users: list[tuple[uuid.UUID, int]], now: datetime
) -> dict[uuid.UUID, int]:
    """Active sessions per user, for (user id, current token_version) pairs, in one query."""
    if not users:
        return {}
    versions = Q(*(Q(user_id=uid, token_version=ver) for uid, ver in users), join_type=Q.OR)
    rows = (
        await Session.filter(
            versions, revoked_at__isnull=True, expires_at__gt=now, absolute_expires_at__gt=now
        )
        .annotate(count=Count("id"))
        .group_by("user_id")
        .values("user_id", "count")
    )
    return {row["user_id"]: row["count"] for row in rows}


def status_filter(statuses: set[SessionStatus], user_token_version: int, now: datetime) -> Q:
    """The rows whose derived status is one of `statuses` (see `session_status`)."""
    not_revoked = Q(revoked_at__isnull=True)
    unexpired = Q(expires_at__gt=now, absolute_expires_at__gt=now)
    current = Q(token_version=user_token_version)
    parts = {
        SessionStatus.ACTIVE: not_revoked & unexpired & current,
        SessionStatus.EXPIRED: not_revoked & ~unexpired,
        SessionStatus.REVOKED: ~not_revoked | (not_revoked & unexpired & ~current),
    }
    return Q(*(parts[status] for status in statuses), join_type=Q.OR)


async def sessions_page(
    user_id: uuid.UUID,
    wanted: Q,
    first: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> list[Session]:
    """A user's sessions, newest first, one page after the keyset `after`, plus one row."""
    return await newest_first(Session.filter(wanted, user_id=user_id), first, after)
