"""The `users` table."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from tortoise import fields
from tortoise.expressions import F
from tortoise.models import Model


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


async def bump_token_version(user_id: uuid.UUID, now: datetime) -> int:
    """Raise the user's token_version by one in SQL (no lost updates); returns the new value.

    Every session that began at an older version is revoked by this single write.
    """
    await User.filter(id=user_id).update(token_version=F("token_version") + 1, updated_at=now)
    user = await User.get(id=user_id).only("id", "token_version")
    return user.token_version
