"""The admin fields: thin resolvers over api.listings and api.accounts, behind IsAdmin."""

from __future__ import annotations

import strawberry

from api import accounts, listings
from models import Role, SessionStatus
from schema.context import Context
from schema.permissions import IsAdmin
from schema.types import (
    AuditEvent,
    AuditEventConnection,
    AuditEventEdge,
    CreateUserInput,
    Session,
    SessionConnection,
    SessionEdge,
    User,
    UserConnection,
    UserEdge,
    page_info,
)

Info = strawberry.Info[Context, None]


@strawberry.type
class AdminQuery:
    @strawberry.field(permission_classes=[IsAdmin])
    async def users(
        self,
        info: Info,
        search: str | None = strawberry.UNSET,
        first: int = 20,
        after: str | None = strawberry.UNSET,
    ) -> UserConnection:
        page = await listings.list_users(
            await info.context.principal(), search or None, first, after or None
        )
        return UserConnection(
            edges=[
                UserEdge(cursor=c, node=User.from_row(u))
                for u, c in zip(page.rows, page.cursors, strict=True)
            ],
            page_info=page_info(page.cursors, page.has_next),
            count=page.count,
        )

    @strawberry.field(permission_classes=[IsAdmin])
    async def user(self, info: Info, id: strawberry.ID) -> User | None:
        row = await listings.get_user(await info.context.principal(), id)
        return User.from_row(row) if row is not None else None

    @strawberry.field(permission_classes=[IsAdmin])
    async def user_sessions(
        self,
        info: Info,
        user_id: strawberry.ID,
        status: list[SessionStatus] = (SessionStatus.ACTIVE,),  # type: ignore[assignment]
        first: int = 50,
        after: str | None = strawberry.UNSET,
    ) -> SessionConnection:
        ctx = info.context
        principal = await ctx.principal()
        user, page = await listings.list_user_sessions(
            ctx.kt, principal, user_id, list(status), first, after or None
        )
        now = ctx.kt.clock()
        return SessionConnection(
            edges=[
                SessionEdge(
                    cursor=c,
                    node=Session.from_row(s, user.token_version, now, principal.session_id),
                )
                for s, c in zip(page.rows, page.cursors, strict=True)
            ],
            page_info=page_info(page.cursors, page.has_next),
            count=page.count,
        )

    @strawberry.field(permission_classes=[IsAdmin])
    async def audit_events(
        self,
        info: Info,
        user_id: strawberry.ID | None = strawberry.UNSET,
        kinds: list[str] | None = strawberry.UNSET,
        first: int = 50,
        after: str | None = strawberry.UNSET,
    ) -> AuditEventConnection:
        # Absent (or null) is no filter; given, even empty, is one: an empty list of kinds
        # matches no event, as an empty list of statuses matches no session, and an empty id
        # is a malformed one.
        page = await listings.list_audit_events(
            await info.context.principal(),
            user_id if isinstance(user_id, str) else None,
            kinds if isinstance(kinds, list) else None,
            first,
            after or None,
        )
        return AuditEventConnection(
            edges=[
                AuditEventEdge(cursor=c, node=AuditEvent.from_row(e))
                for e, c in zip(page.rows, page.cursors, strict=True)
            ],
            page_info=page_info(page.cursors, page.has_next),
        )


@strawberry.type
class AdminMutation:
    @strawberry.mutation(permission_classes=[IsAdmin])
    async def create_user(self, info: Info, input: CreateUserInput) -> User:
        ctx = info.context
        row = await accounts.admin_create_user(
            ctx.kt, await ctx.principal(), input.email, input.password, input.role, ctx.client
        )
        return User.from_row(row)

    @strawberry.mutation(permission_classes=[IsAdmin])
    async def revoke_session(self, info: Info, session_id: strawberry.ID) -> Session:
        ctx = info.context
        principal = await ctx.principal()
        row, user = await accounts.revoke_session_as_admin(
            ctx.kt, principal, session_id, ctx.client
        )
        return Session.from_row(row, user.token_version, ctx.kt.clock(), principal.session_id)

    @strawberry.mutation(permission_classes=[IsAdmin])
    async def revoke_user_sessions(self, info: Info, user_id: strawberry.ID) -> User:
        ctx = info.context
        row = await accounts.revoke_user_sessions(
            ctx.kt, await ctx.principal(), user_id, ctx.client
        )
        return User.from_row(row)

    @strawberry.mutation(permission_classes=[IsAdmin])
    async def set_user_active(self, info: Info, user_id: strawberry.ID, is_active: bool) -> User:
        ctx = info.context
        row = await accounts.set_user_active(
            ctx.kt, await ctx.principal(), user_id, is_active, ctx.client
        )
        return User.from_row(row)

    @strawberry.mutation(permission_classes=[IsAdmin])
    async def set_user_role(self, info: Info, user_id: strawberry.ID, role: Role) -> User:
        ctx = info.context
        row = await accounts.set_user_role(ctx.kt, await ctx.principal(), user_id, role, ctx.client)
        return User.from_row(row)
