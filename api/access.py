"""The per-request access check: a verified JWT whose session and user are still alive.

The database answer is cached per session for at most `revocation_cache_ttl` seconds, so a
revocation made elsewhere bites within that bound; revocations made in this process drop their
entries at once.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from api.errors import AuthError, ErrorCode
from api.tokens import TokenExpired, TokenInvalid, TokenService
from models import Role
from models import Session as SessionRow

MAX_CACHED_SESSIONS = 50_000


@dataclass(frozen=True, slots=True)
class Principal:
    """The signed-in caller, as the database (not the token) describes them."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    role: Role
    token_version: int

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


@dataclass(frozen=True, slots=True)
class _SessionState:
    user_id: uuid.UUID
    session_version: int
    revoked: bool
    expires_at: datetime
    absolute_expires_at: datetime
    user_active: bool
    user_version: int
    role: Role
    fetched_at: float


class AccessChecker:
    def __init__(
        self, tokens: TokenService, clock: Callable[[], datetime], cache_ttl: float
    ) -> None:
        self._tokens = tokens
        self._clock = clock
        self._ttl = cache_ttl
        self._cache: OrderedDict[uuid.UUID, _SessionState] = OrderedDict()

    async def authenticate(self, token: str) -> Principal:
        now = self._clock()
        try:
            claims = self._tokens.verify_access(token, now)
        except TokenExpired:
            raise AuthError(ErrorCode.TOKEN_EXPIRED) from None
        except TokenInvalid:
            raise AuthError(ErrorCode.UNAUTHENTICATED) from None
        state = await self._state(claims.session_id)
        if (
            state is None
            or state.user_id != claims.user_id
            or state.revoked
            or not state.user_active
            or state.user_version != claims.token_version
            or state.session_version != state.user_version
            or now >= state.expires_at
            or now >= state.absolute_expires_at
        ):
            raise AuthError(ErrorCode.TOKEN_REVOKED)
        return Principal(
            user_id=state.user_id,
            session_id=claims.session_id,
            role=state.role,
            token_version=state.user_version,
        )

    async def _state(self, session_id: uuid.UUID) -> _SessionState | None:
        cached = self._cache.get(session_id)
        if cached is not None and time.monotonic() - cached.fetched_at < self._ttl:
            return cached
        rows = await SessionRow.filter(id=session_id).values(
            "user_id",
            "token_version",
            "revoked_at",
            "expires_at",
            "absolute_expires_at",
            "user__is_active",
            "user__token_version",
            "user__role",
        )
        if not rows:
            self._cache.pop(session_id, None)
            return None
        row = rows[0]
        state = _SessionState(
            user_id=row["user_id"],
            session_version=row["token_version"],
            revoked=row["revoked_at"] is not None,
            expires_at=row["expires_at"],
            absolute_expires_at=row["absolute_expires_at"],
            user_active=row["user__is_active"],
            user_version=row["user__token_version"],
            role=Role(row["user__role"]),
            fetched_at=time.monotonic(),
        )
        if self._ttl > 0:
            self._cache[session_id] = state
            self._cache.move_to_end(session_id)
            while len(self._cache) > MAX_CACHED_SESSIONS:
                self._cache.popitem(last=False)
        return state

    def forget_session(self, session_id: uuid.UUID) -> None:
        self._cache.pop(session_id, None)

    def forget_user(self, user_id: uuid.UUID) -> None:
        for sid in [sid for sid, state in self._cache.items() if state.user_id == user_id]:
            del self._cache[sid]
