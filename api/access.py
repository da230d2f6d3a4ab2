"""The per-request access check: a verified JWT whose session and user are still alive.

The database answer is cached per session for at most `revocation_cache_ttl` seconds, so a
revocation made elsewhere bites within that bound; revocations made in this process drop their
entries at once, and with a broadcast attached (api.revocation) so do every other instance's.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from api.errors import AuthError, ErrorCode
from api.tokens import AccessClaims, TokenExpired, TokenInvalid, TokenService
from models import Role
from models.sessions import session_state

logger = logging.getLogger("keyturn.access")

MAX_CACHED_SESSIONS = 50_000
# Past this fraction of the TTL, a session's next request starts a re-read in the background;
# at most this many such reads run at once, so that they never crowd out the reads requests wait
# for (a session whose read ahead was skipped is read by its next request past the TTL).
REFRESH_AHEAD = 0.5
MAX_READS_AHEAD = 4
MAX_VERIFIED_TOKENS = 10_000


class RevocationBroadcast(Protocol):
    """Tells the other instances about a revocation made in this process."""

    def session_revoked(self, session_id: uuid.UUID) -> None: ...

    def user_revoked(self, user_id: uuid.UUID) -> None: ...


@dataclass(frozen=True, slots=True)
class Account:
    """The caller's user row as the access check read it (at most `revocation_cache_ttl` ago)."""

    email: str
    created_at: datetime
    last_login_at: datetime | None


@dataclass(frozen=True, slots=True)
class Principal:
    """The signed-in caller, as the database (not the token) describes them."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    role: Role
    token_version: int
    account: Account

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


@dataclass(frozen=True, slots=True)
class _SessionState:
    """What the access check needs of one session's row and its user's, as read at
    `fetched_at`, worked out once per read rather than on every request."""

    principal: Principal  # its user and the user's token_version, which a token must carry
    usable: bool  # not revoked, its user active, not ended by a token_version bump
    ends_at: datetime  # the earlier of the idle and the absolute expiry
    fetched_at: float


class VerifiedTokens:
    """Access tokens already verified, by their exact text: a client's token is checked once.

    Verifying the signature and the claims cost more than the rest of the check together; the
    same bytes always verify the same way, so only the expiry is checked again on every use.
    Only tokens that verified are kept, so nothing a caller sends can fill this with junk.
    """

    def __init__(self, tokens: TokenService, maxsize: int = MAX_VERIFIED_TOKENS) -> None:
        self._tokens = tokens
        self._maxsize = maxsize
        self._claims: dict[str, AccessClaims] = {}

    def verify(self, token: str, now: datetime) -> AccessClaims:
        """The token's claims; raises TokenInvalid or TokenExpired as TokenService does."""
        claims = self._claims.get(token)
        if claims is None:
            claims = self._tokens.verify_access(token, now)
            if len(self._claims) >= self._maxsize:
                del self._claims[next(iter(self._claims))]  # the oldest
            self._claims[token] = claims
        elif now >= claims.expires_at:
            raise TokenExpired
        return claims


class AccessChecker:
    def __init__(
        self, tokens: TokenService, clock: Callable[[], datetime], cache_ttl: float
    ) -> None:
        self._verified = VerifiedTokens(tokens)
        self._clock = clock
        self._ttl = cache_ttl
        self._cache: OrderedDict[uuid.UUID, _SessionState] = OrderedDict()
        # When a revocation was last heard of, per session and per user: a cached state fetched
        # before that moment is stale. Older marks are dropped, their entries expired anyway.
        self._session_marks: dict[uuid.UUID, float] = {}
        self._user_marks: dict[uuid.UUID, float] = {}
        self.broadcast: RevocationBroadcast | None = None
        self._pending: dict[uuid.UUID, asyncio.Future[_SessionState | None]] = {}
        self._background: set[asyncio.Task[None]] = set()

    async def authenticate(self, token: str) -> Principal:
        now = self._clock()
        try:
            claims = self._verified.verify(token, now)
        except TokenExpired:
            raise AuthError(ErrorCode.TOKEN_EXPIRED) from None
        except TokenInvalid:
            raise AuthError(ErrorCode.UNAUTHENTICATED) from None
        state = await self._state(claims.session_id)
        if state is None or not state.usable or now >= state.ends_at:
            raise AuthError(ErrorCode.TOKEN_REVOKED)
        principal = state.principal
        if principal.user_id != claims.user_id or principal.token_version != claims.token_version:
            raise AuthError(ErrorCode.TOKEN_REVOKED)
        return principal

    async def _state(self, session_id: uuid.UUID) -> _SessionState | None:
        now = time.monotonic()
        cached = self._cache.get(session_id)
        if cached is not None and self._fresh(session_id, cached, now):
            if now - cached.fetched_at >= self._ttl * REFRESH_AHEAD:
                self._refresh_ahead(session_id)
            return cached
        pending = self._pending.get(session_id)
        if pending is not None:
            # Another request (or a refresh ahead) is reading this very row: share its answer,
            # unless a revocation heard of since it started makes that answer stale.
            try:
                state = await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this request itself was cancelled
            else:
                if state is None or self._fresh(session_id, state, time.monotonic()):
                    return state
        return await self._fetch(session_id)

    def _refresh_ahead(self, session_id: uuid.UUID) -> None:
        """Re-reads a busy session's row in the background while its cached answer still holds.

        Its requests then never wait for the database: before the entry is too old to use, a
        fresh one has replaced it. The bound is unchanged: only answers younger than the TTL
        are ever used.
        """
        if session_id in self._pending or len(self._background) >= MAX_READS_AHEAD:
            return
        task = asyncio.get_running_loop().create_task(self._fetch_quietly(session_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _fetch_quietly(self, session_id: uuid.UUID) -> None:
        try:
            await self._fetch(session_id)
        except Exception:
            # The next request past the TTL reads the row itself, and fails with the reason.
            logger.debug("refreshing a cached session ahead of time failed", exc_info=True)

    async def _fetch(self, session_id: uuid.UUID) -> _SessionState | None:
        """Reads the row; requests for the same session meanwhile wait for this one read."""
        future: asyncio.Future[_SessionState | None] = asyncio.get_running_loop().create_future()
        self._pending[session_id] = future
        try:
            state = await self._read(session_id)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # raised to this caller; whoever waits gets it too
            raise
        finally:
            if self._pending.get(session_id) is future:
                del self._pending[session_id]
        future.set_result(state)
        return state

    async def _read(self, session_id: uuid.UUID) -> _SessionState | None:
        # Timed from before the query: a revocation that commits while it runs marks it stale.
        started = time.monotonic()
        found = await session_state(session_id)
        if found is None:
            self._cache.pop(session_id, None)
            return None
        session, user = found
        version = user["token_version"]
        state = _SessionState(
            usable=(
                session["revoked_at"] is None
                and bool(user["is_active"])
                and session["token_version"] == version
            ),
            ends_at=min(session["expires_at"], session["absolute_expires_at"]),
            principal=Principal(
                user_id=session["user_id"],
                session_id=session_id,
                role=Role(user["role"]),
                token_version=version,
                account=Account(
                    email=user["email"],
                    created_at=user["created_at"],
                    last_login_at=user["last_login_at"],
                ),
            ),
            fetched_at=started,
        )
        current = self._cache.get(session_id)
        if self._ttl > 0 and (current is None or current.fetched_at <= started):
            self._cache[session_id] = state
            self._cache.move_to_end(session_id)
            while len(self._cache) > MAX_CACHED_SESSIONS:
                self._cache.popitem(last=False)
        return state

    def _fresh(self, session_id: uuid.UUID, state: _SessionState, now: float) -> bool:
        fetched = state.fetched_at
        return (
            now - fetched < self._ttl
            and self._session_marks.get(session_id, -1.0) < fetched
            and self._user_marks.get(state.principal.user_id, -1.0) < fetched
        )

    async def close(self) -> None:
        """Stops the refreshes ahead still running (at shutdown, before the database goes)."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    def forget_session(self, session_id: uuid.UUID) -> None:
        """A session revoked in this process: drop it here and on every other instance."""
        self.drop_session(session_id)
        if self.broadcast is not None:
            self.broadcast.session_revoked(session_id)

    def forget_user(self, user_id: uuid.UUID) -> None:
        """A user's sessions revoked (or role changed) in this process: here and everywhere."""
        self.drop_user(user_id)
        if self.broadcast is not None:
            self.broadcast.user_revoked(user_id)

    def drop_session(self, session_id: uuid.UUID) -> None:
        self._cache.pop(session_id, None)
        self._mark(self._session_marks, session_id)

    def drop_user(self, user_id: uuid.UUID) -> None:
        # A mark rather than a scan of the cache: O(1) however many sessions are cached.
        self._mark(self._user_marks, user_id)

    def _mark(self, marks: dict[uuid.UUID, float], key: uuid.UUID) -> None:
        if self._ttl <= 0:
            return
        now = time.monotonic()
        marks.pop(key, None)
        marks[key] = now  # insertion order stays time order
        horizon = now - self._ttl
        for old in list(itertools.takewhile(lambda k: marks[k] < horizon, marks)):
            del marks[old]
