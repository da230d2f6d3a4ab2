"""The `audit_events` table: an append-only record of every lifecycle and admin step."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model
from tortoise.queryset import QuerySet

from models.ids import ordered_uuid
from models.keyset import newest_first
from models.statements import Statement, encode_row, insert_sql

if TYPE_CHECKING:
    from models.users import User


class AuditKind(StrEnum):
    LOGIN_SUCCEEDED = "login_succeeded"
    LOGIN_FAILED = "login_failed"
    REGISTERED = "registered"
    REFRESHED = "refreshed"
    REFRESH_REUSE_DETECTED = "refresh_reuse_detected"
    LOGGED_OUT = "logged_out"
    LOGGED_OUT_ALL = "logged_out_all"
    PASSWORD_CHANGED = "password_changed"
    SESSION_REVOKED = "session_revoked"
    USER_SESSIONS_REVOKED = "user_sessions_revoked"
    USER_CREATED = "user_created"
    USER_ACTIVATED = "user_activated"
    USER_DEACTIVATED = "user_deactivated"
    ROLE_CHANGED = "role_changed"
    RATE_LIMITED = "rate_limited"


class AuditEvent(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    created_at = fields.DatetimeField()
    kind = fields.CharField(max_length=40)
    user: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="audit_events", null=True, on_delete=fields.SET_NULL
    )
    session_id = fields.UUIDField(null=True)
    actor: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="actions", null=True, on_delete=fields.SET_NULL
    )
    ip_address = fields.CharField(max_length=45, null=True)
    user_agent = fields.CharField(max_length=512, null=True)
    detail: fields.Field[Any] = fields.JSONField(null=True)

    user_id: uuid.UUID | None
    actor_id: uuid.UUID | None

    class Meta:
        table = "audit_events"
        indexes = (
            ("created_at", "id"),
            ("user_id", "created_at", "id"),
            ("kind", "created_at", "id"),
        )


EVENT_COLUMNS = (
    "id",
    "created_at",
    "kind",
    "user_id",
    "session_id",
    "actor_id",
    "ip_address",
    "user_agent",
    "detail",
)
INSERT_EVENT = Statement(lambda: insert_sql(AuditEvent, EVENT_COLUMNS))


def event_values(
    kind: AuditKind,
    now: datetime,
    *,
    user_id: uuid.UUID | None = None,
    session_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
    ip_address: str | None = None,
    user_agent: str | None = None,
    detail: dict[str, Any] | None = None,
) -> list[Any]:
    """One new event's parameters for `INSERT_EVENT`, in the order of `EVENT_COLUMNS`."""
    return encode_row(
        AuditEvent,
        EVENT_COLUMNS,
        (
            ordered_uuid(),
            now,
            kind.value,
            user_id,
            session_id,
            actor_id,
            ip_address,
            user_agent,
            detail,
        ),
    )


async def record_event(kind: AuditKind, now: datetime, **fields: Any) -> None:
    """Appends one event (on every lifecycle step: hence SQL written once); see `event_values`."""
    await insert_event(event_values(kind, now, **fields))


async def insert_event(values: list[Any]) -> None:
    """Appends the event whose parameters `event_values` made."""
    await INSERT_EVENT.run(AuditEvent._meta.db, values)


async def delete_old_events(before: datetime, batch_size: int) -> int:
    ids = (
        await AuditEvent.filter(created_at__lt=before)
        .limit(batch_size)
        .values_list("id", flat=True)
    )
    if not ids:
        return 0
    return await AuditEvent.filter(id__in=list(ids)).delete()


def events_page_query(
    user_id: uuid.UUID | None,
    kinds: list[str] | None,
    first: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> QuerySet[AuditEvent]:
    """Audit events newest first, one page after the keyset `after`, plus one row."""
    query = AuditEvent.all()
    if user_id is not None:
        query = query.filter(user_id=user_id)
    if kinds:
        query = query.filter(kind__in=kinds)
    return newest_first(query, first, after)


async def events_page(
    user_id: uuid.UUID | None,
    kinds: list[str] | None,
    first: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> list[AuditEvent]:
    return await events_page_query(user_id, kinds, first, after)
