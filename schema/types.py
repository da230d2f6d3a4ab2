"""GraphQL types: thin views over the rows, built per request."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry

from models import Role, SessionStatus
from models import Session as SessionRow
from models import User as UserRow
from models.sessions import revoked_reason, session_status

if TYPE_CHECKING:
    from schema.context import Context

# The model enums are the GraphQL enums: strawberry registers them in place.
strawberry.enum(Role, name="Role")
strawberry.enum(SessionStatus, name="SessionStatus")


@strawberry.enum
class RefreshTokenDelivery(Enum):
    COOKIE = "cookie"
    BODY = "body"


@strawberry.type
class User:
    id: strawberry.ID
    email: str
    role: Role
    is_active: bool
    token_version: int
    created_at: datetime
    last_login_at: datetime | None

    @strawberry.field
    async def active_session_count(self, info: strawberry.Info[Context, None]) -> int:
        return await info.context.loaders.active_session_counts.load(
            (uuid.UUID(self.id), self.token_version)
        )

    @classmethod
    def from_row(cls, row: UserRow) -> User:
        return cls(
            id=strawberry.ID(str(row.id)),
            email=row.email,
            role=row.role,
            is_active=row.is_active,
            token_version=row.token_version,
            created_at=row.created_at,
            last_login_at=row.last_login_at,
        )


@strawberry.type
class Session:
    id: strawberry.ID
    status: SessionStatus
    is_current: bool
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    ip_address: str | None
    user_agent: str | None
    revoked_at: datetime | None
    revoked_reason: str | None
    user_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def user(
        self, info: strawberry.Info[Context, None]
    ) -> Annotated[User, strawberry.lazy("schema.types")]:
        row = await info.context.loaders.users.load(self.user_id)
        assert row is not None  # a session's user is deleted with it (ON DELETE CASCADE)
        return User.from_row(row)

    @classmethod
    def from_row(
        cls,
        row: SessionRow,
        user_token_version: int,
        now: datetime,
        current_session_id: uuid.UUID | None,
    ) -> Session:
        return cls(
            id=strawberry.ID(str(row.id)),
            status=session_status(row, user_token_version, now),
            is_current=row.id == current_session_id,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            expires_at=min(row.expires_at, row.absolute_expires_at),
            ip_address=row.ip_address,
            user_agent=row.user_agent,
            revoked_at=row.revoked_at,
            revoked_reason=revoked_reason(row, user_token_version),
            user_id=row.user_id,
        )


@strawberry.type
class AuthPayload:
    access_token: str
    access_token_expires_at: datetime
    refresh_token: str | None
    refresh_token_expires_at: datetime
    user: User
    session: Session


@strawberry.input
class LoginInput:
    email: str
    password: str
    refresh_token_delivery: RefreshTokenDelivery = RefreshTokenDelivery.COOKIE


@strawberry.input
class RegisterInput:
    email: str
    password: str
    refresh_token_delivery: RefreshTokenDelivery = RefreshTokenDelivery.COOKIE
