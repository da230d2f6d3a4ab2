"""The typed per-request context: who is calling, from where, and the request's loaders."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from functools import cached_property

from starlette.requests import Request
from starlette.responses import Response
from strawberry.dataloader import DataLoader

from api.access import Principal
from api.clients import ClientInfo, client_info
from api.cookies import REFRESH_COOKIE, cookie_allowed
from api.errors import AuthError, ErrorCode
from api.runtime import Keyturn
from models import User as UserRow
from models.sessions import count_active_sessions


async def _load_users(kt: Keyturn, ids: list[uuid.UUID]) -> list[UserRow | None]:
    rows = {row.id: row for row in await UserRow.filter(id__in=ids)}
    return [rows.get(uid) for uid in ids]


@dataclass
class Loaders:
    kt: Keyturn
    users: DataLoader[uuid.UUID, UserRow | None] = field(init=False)
    active_session_counts: DataLoader[tuple[uuid.UUID, int], int] = field(init=False)

    def __post_init__(self) -> None:
        kt = self.kt

        async def users(ids: list[uuid.UUID]) -> list[UserRow | None]:
            return await _load_users(kt, ids)

        async def counts(keys: list[tuple[uuid.UUID, int]]) -> list[int]:
            found = await count_active_sessions(keys, kt.clock())
            return [found.get(uid, 0) for uid, _ in keys]

        self.users = DataLoader(load_fn=users)
        self.active_session_counts = DataLoader(load_fn=counts)


@dataclass
class Context:
    request: Request
    response: Response
    kt: Keyturn
    request_id: str
    _principal: Principal | None = None
    _checking: asyncio.Future[Principal | Exception] | None = None

    @cached_property
    def loaders(self) -> Loaders:
        """This request's DataLoaders, made when a field first batches through them."""
        return Loaders(self.kt)

    @cached_property
    def client(self) -> ClientInfo:
        """The caller's address and user agent, worked out when a field first needs them."""
        return client_info(self.request, self.kt.trusted_proxies)

    async def principal(self) -> Principal:
        """The signed-in caller; raises the contract error when there is none.

        Checked once per request: sibling fields resolving concurrently share the first one's
        check (no task of its own: that cost a cached `me` more than the check itself).
        """
        if self._principal is not None:
            return self._principal
        if self._checking is not None:
            # Shielded: a sibling cancelled while waiting must not cancel the shared check.
            outcome = await asyncio.shield(self._checking)
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        checking = self._checking = asyncio.get_running_loop().create_future()
        try:
            principal = await self._authenticate()
        except Exception as exc:
            # A failure is the future's result, not its exception: a future keeps the traceback
            # it is handed, whose frames hold this context and so the future again, a cycle
            # left to the collector by every refused request. The exception's own traceback is
            # dropped once the request is answered (schema/errors.py, drop_tracebacks).
            checking.set_result(exc)
            raise
        except BaseException:
            checking.cancel()
            raise
        self._principal = principal
        checking.set_result(principal)
        return principal

    async def _authenticate(self) -> Principal:
        token = bearer_token(self.request)
        if token is None:
            raise AuthError(ErrorCode.UNAUTHENTICATED)
        return await self.kt.access.authenticate(token)

    async def optional_principal(self) -> Principal | None:
        if bearer_token(self.request) is None:
            return None
        return await self.principal()

    def cookies_trusted(self) -> bool:
        """Whether this request passes the CSRF rule for the refresh cookie."""
        return cookie_allowed(self.request, self.kt.settings.cors_origins)

    def refresh_cookie(self) -> str | None:
        """The refresh cookie, only where the CSRF rule lets it count."""
        value = self.request.cookies.get(REFRESH_COOKIE)
        if not value or not self.cookies_trusted():
            return None
        return value

    def no_refresh_token(self) -> AuthError:
        """INVALID_REFRESH_TOKEN for a refresh with neither argument nor usable cookie, saying
        which: a browser app that lost its cookie to the same-site or CSRF rule has nothing
        else to go on."""
        if self.request.cookies.get(REFRESH_COOKIE):
            message = (
                "The refresh_token cookie was not used: it counts only on a JSON POST whose "
                "Origin is Keyturn's own or listed in KEYTURN_CORS_ORIGINS."
            )
        else:
            message = (
                "No refresh token: no refreshToken argument, and no refresh_token cookie came "
                "with this request (a browser keeps it only when the app and Keyturn are on "
                "the same site)."
            )
        return AuthError(ErrorCode.INVALID_REFRESH_TOKEN, message)

    def set_refresh_cookie(self, token: str) -> None:
        settings = self.kt.settings
        self.response.set_cookie(
            REFRESH_COOKIE,
            token,
            max_age=settings.refresh_token_ttl,
            path="/graphql",
            secure=settings.cookie_secure,
            httponly=True,
            samesite=settings.cookie_samesite,
        )

    def clear_refresh_cookie(self) -> None:
        settings = self.kt.settings
        self.response.delete_cookie(
            REFRESH_COOKIE,
            path="/graphql",
            secure=settings.cookie_secure,
            httponly=True,
            samesite=settings.cookie_samesite,
        )


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
