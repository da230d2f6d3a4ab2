"""GraphQL types: thin views over the rows, built per request."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry

from api.access import Principal
from models import AuditEvent as AuditEventRow
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
    def from_principal(cls, principal: Principal) -> User:
        """The caller, from the row their access check read: `me` costs no query of its own."""
        account = principal.account
        return cls(
            id=strawberry.ID(str(principal.user_id)),
            email=account.email,
            role=principal.role,
            is_active=True,  # the check refuses the tokens of a disabled account
            token_version=principal.token_version,
            created_at=account.created_at,
            last_login_at=account.last_login_at,
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
            revoked_reason=revoked_reason(row, user_token_version, now),
            user_id=row.user_id,
        )


@strawberry.type
class AuthPayload:
    access_token: str
    access_token_expires_at: datetime
    refresh_token: str | None
    refresh_token_expires_at: datetime
    # The user and session rows, decoded only if the query selects them (api.auth.AuthResult).
    rows: strawberry.Private[Callable[[], tuple[UserRow, SessionRow]]]
    now: strawberry.Private[datetime]

    @strawberry.field
    def user(self) -> User:
        return User.from_row(self.rows()[0])

    @strawberry.field
    def session(self) -> Session:
        user, session = self.rows()
        return Session.from_row(session, user.token_version, self.now, session.id)


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


@strawberry.type
class AuditEvent:
    id: strawberry.ID
    kind: str
    created_at: datetime
    session_id: strawberry.ID | None
    ip_address: str | None
    user_agent: str | None
    detail: str | None
    user_id: strawberry.Private[uuid.UUID | None]
    actor_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field
    async def user(self, info: strawberry.Info[Context, None]) -> User | None:
        return await _load_user(info, self.user_id)

    @strawberry.field
    async def actor(self, info: strawberry.Info[Context, None]) -> User | None:
        return await _load_user(info, self.actor_id)

    @classmethod
    def from_row(cls, row: AuditEventRow) -> AuditEvent:
        return cls(
            id=strawberry.ID(str(row.id)),
            kind=row.kind,
            created_at=row.created_at,
            session_id=strawberry.ID(str(row.session_id)) if row.session_id else None,
            ip_address=row.ip_address,
            user_agent=row.user_agent,
            detail=json.dumps(row.detail, sort_keys=True) if row.detail is not None else None,
            user_id=row.user_id,
            actor_id=row.actor_id,
        )


async def _load_user(
    info: strawberry.Info[Context, None], user_id: uuid.UUID | None
) -> User | None:
    if user_id is None:
        return None
    row = await info.context.loaders.users.load(user_id)
    return User.from_row(row) if row is not None else None


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class UserEdge:
    cursor: str
    node: User


@strawberry.type
class UserConnection:
    edges: list[UserEdge]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field
    async def total_count(self) -> int:
        # Counted only when selected: the count grows with the table, the page does not.
        return await self.count()


@strawberry.type
class SessionEdge:
    cursor: str
    node: Session


@strawberry.type
class SessionConnection:
    edges: list[SessionEdge]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field
    async def total_count(self) -> int:
        return await self.count()


@strawberry.type
class AuditEventEdge:
    cursor: str
    node: AuditEvent


@strawberry.type
class AuditEventConnection:
    edges: list[AuditEventEdge]
    page_info: PageInfo


def page_info(cursors: list[str], has_next: bool) -> PageInfo:
    return PageInfo(has_next_page=has_next, end_cursor=cursors[-1] if cursors else None)


@strawberry.input
class CreateUserInput:
    email: str
    password: str
    role: Role = Role.USER
