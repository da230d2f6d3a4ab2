"""The token lifecycle fields: thin resolvers over api.auth, each call throttled by api.ratelimit.

The throttle is asked here, once per executed field, so that aliases, fragments and repeated
fields in one document each count as an attempt.
"""

from __future__ import annotations

import strawberry

from api import auth
from api.errors import AuthError, ErrorCode
from schema.context import Context
from schema.permissions import IsAuthenticated
from schema.types import (
    AuthPayload,
    LoginInput,
    RefreshTokenDelivery,
    RegisterInput,
    Session,
    User,
)

Info = strawberry.Info[Context, None]


def auth_payload(
    info: Info, result: auth.AuthResult, delivery: RefreshTokenDelivery
) -> AuthPayload:
    refresh_token: str | None = result.refresh_token
    if delivery is RefreshTokenDelivery.COOKIE:
        info.context.set_refresh_cookie(result.refresh_token)
        refresh_token = None
    return AuthPayload(
        access_token=result.access_token,
        access_token_expires_at=result.access_expires_at,
        refresh_token=refresh_token,
        refresh_token_expires_at=result.refresh_expires_at,
        rows=result.rows,
        now=info.context.kt.clock(),
    )


@strawberry.type
class AuthQuery:
    @strawberry.field(permission_classes=[IsAuthenticated])
    async def me(self, info: Info) -> User:
        return User.from_principal(await info.context.principal())

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def my_sessions(self, info: Info) -> list[Session]:
        ctx = info.context
        principal = await ctx.principal()
        now = ctx.kt.clock()
        rows = await auth.my_sessions(ctx.kt, principal)
        return [
            Session.from_row(row, principal.token_version, now, principal.session_id)
            for row in rows
        ]


@strawberry.type
class AuthMutation:
    @strawberry.mutation
    async def register(self, info: Info, input: RegisterInput) -> AuthPayload:
        ctx = info.context
        async with ctx.kt.throttle.register(ctx.client):
            result = await auth.register(ctx.kt, input.email, input.password, ctx.client)
        return auth_payload(info, result, input.refresh_token_delivery)

    @strawberry.mutation
    async def login(self, info: Info, input: LoginInput) -> AuthPayload:
        ctx = info.context
        async with ctx.kt.throttle.login(input.email, ctx.client):
            result = await auth.login(ctx.kt, input.email, input.password, ctx.client)
        return auth_payload(info, result, input.refresh_token_delivery)

    @strawberry.mutation
    async def refresh(
        self,
        info: Info,
        refresh_token: str | None = strawberry.UNSET,
        refresh_token_delivery: RefreshTokenDelivery | None = strawberry.UNSET,
    ) -> AuthPayload:
        ctx = info.context
        await ctx.kt.throttle.refresh(ctx.client)
        # An argument given, even empty, is the token: only an absent (or null) one falls
        # back to the cookie, as the contract says.
        from_cookie = not isinstance(refresh_token, str)
        token = ctx.refresh_cookie() if from_cookie else refresh_token
        if token is None:
            raise ctx.no_refresh_token()
        try:
            result = await auth.refresh(ctx.kt, token, ctx.client)
        except AuthError as exc:
            if from_cookie and exc.code in (
                ErrorCode.INVALID_REFRESH_TOKEN,
                ErrorCode.REFRESH_TOKEN_REUSED,
            ):
                ctx.clear_refresh_cookie()
            raise
        if not refresh_token_delivery:
            refresh_token_delivery = (
                RefreshTokenDelivery.COOKIE if from_cookie else RefreshTokenDelivery.BODY
            )
        elif from_cookie and refresh_token_delivery is RefreshTokenDelivery.BODY:
            # The cookie's token has just been rotated out: left in the browser, its next use
            # after the grace window would read as theft and revoke the session.
            ctx.clear_refresh_cookie()
        return auth_payload(info, result, refresh_token_delivery)

    @strawberry.mutation
    async def logout(self, info: Info, refresh_token: str | None = strawberry.UNSET) -> bool:
        ctx = info.context
        token = refresh_token if isinstance(refresh_token, str) else ctx.refresh_cookie()
        principal = None if token is not None else await ctx.optional_principal()
        if ctx.cookies_trusted():
            # Only a request that may use the cookie may clear it: a cross-site post cannot
            # sign a browser out either.
            ctx.clear_refresh_cookie()
        await auth.logout(ctx.kt, token, principal, ctx.client)
        return True

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def logout_all(self, info: Info) -> bool:
        ctx = info.context
        await auth.logout_all(ctx.kt, await ctx.principal(), ctx.client)
        ctx.clear_refresh_cookie()
        return True

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def change_password(
        self,
        info: Info,
        current_password: str,
        new_password: str,
        refresh_token_delivery: RefreshTokenDelivery = RefreshTokenDelivery.COOKIE,
    ) -> AuthPayload:
        ctx = info.context
        principal = await ctx.principal()
        throttle = ctx.kt.throttle
        async with throttle.password_change(principal.user_id, principal.account.email, ctx.client):
            result = await auth.change_password(
                ctx.kt, principal, current_password, new_password, ctx.client
            )
        return auth_payload(info, result, refresh_token_delivery)

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def revoke_my_session(self, info: Info, session_id: strawberry.ID) -> Session:
        ctx = info.context
        principal = await ctx.principal()
        row = await auth.revoke_my_session(ctx.kt, principal, session_id, ctx.client)
        return Session.from_row(row, principal.token_version, ctx.kt.clock(), principal.session_id)
