"""Throttling the mutations that guess or cost: login, register, refresh and changePassword.

The resolvers call in here once per executed field, so aliases, fragments and repeated fields
each count, whatever arrives in one HTTP request. Counters are fixed windows of the `limits`
library: in process memory by default, in Redis when KEYTURN_REDIS_URL is set, so that every
instance and worker shares them. A Redis that cannot be reached makes the throttled mutations
answer SERVICE_UNAVAILABLE: throttling never silently switches off.

Failed passwords lock an account out, progressively and for a bounded time:

- each attempt reserves one failure on the account before the password is checked, so a burst
  of concurrent guesses cannot all slip through; a password proven right clears the account;
- after KEYTURN_LOGIN_MAX_FAILURES_PER_ACCOUNT failures in one window (15 minutes, from the
  first failure) the account answers RATE_LIMITED until that window passes, right password too;
- each further lockout within a day lasts longer, twice the window, then four, then eight times
  (two hours by default); none lasts longer than that, so nobody is locked out for good.

Unknown emails are counted exactly like known ones, under the normalized email, so the limiter
tells nothing about which accounts exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import ipaddress
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import StorageError
from limits.limits import safe_string
from limits.util import WindowStats
from redis.asyncio import ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from api.clients import ClientInfo, clean_text, parse_address
from api.clock import Clock
from api.counters import WindowCounters
from api.errors import AuthError, ErrorCode
from api.passwords import PasswordsBusy
from api.redis_trouble import describe, is_redis_failure
from api.settings import Settings
from models import AuditKind
from models import User as UserRow
from models.audit import record_event
from models.users import normalize_email

logger = logging.getLogger("keyturn.ratelimit")

LOGIN_IP_WINDOW = 60
REGISTER_IP_WINDOW = 3600
REFRESH_IP_WINDOW = 60
LOCKOUT_MEMORY = 86400
MAX_LOCKOUT_FACTOR = 8
BUSY_WINDOW = 60
REDIS_TIMEOUT = 1.0
MAX_EMAIL = 254
IPV6_CLIENT_PREFIX = 64

# What an attempt ending in these codes proves: the password was checked and was right
# (ACCOUNT_DISABLED after login's check; BAD_USER_INPUT for a refused new password, which
# changePassword validates only after the current one matched).
PASSWORD_PROVEN = frozenset({ErrorCode.ACCOUNT_DISABLED, ErrorCode.BAD_USER_INPUT})
# The verdict of a wrong password: the attempt's failure stands. Any other end leaves the
# password unjudged, and the failure is taken back.
PASSWORD_REFUSED = frozenset({ErrorCode.INVALID_CREDENTIALS})


class _Window(RateLimitItemPerSecond):
    """A limit whose counter is named by what it counts and its window, not by its amount.

    `limits` names a counter after its amount too, so that changing a limit (a setting, on a
    rolling restart) started every count afresh in Redis: lowering
    KEYTURN_LOGIN_MAX_FAILURES_PER_ACCOUNT in the middle of an attack handed the attacker a new
    budget, and during the rollout the old and new instances counted apart, each granting its
    own. Here every instance counts on one counter and judges it by its own limit.
    """

    def key_for(self, *identifiers: bytes | str | int | float) -> str:
        named = "/".join(safe_string(part) for part in identifiers)
        return f"{self.namespace}/{named}/{self.multiples}s"


def _per(amount: int, seconds: int, namespace: str) -> RateLimitItem:
    return _Window(amount, seconds, namespace=namespace)


def lockout_seconds(window: int, level: int) -> int:
    """How long the level-th lockout of a day lasts: the window, doubling, at most 8 windows."""
    factor: int = min(2 ** (max(level, 1) - 1), MAX_LOCKOUT_FACTOR)
    return window * factor


@functools.lru_cache(maxsize=4096)
def address_key(ip_address: str | None) -> str:
    """One counter per client: a whole IPv6 /64 is one client, since anyone holding one holds
    all of it."""
    address = parse_address(ip_address) if ip_address else None
    if address is None:
        return ip_address or "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/{IPV6_CLIENT_PREFIX}", strict=False))
    return str(address)


def account_key(kind: str, value: str) -> str:
    # Hashed: an email is personal data, and its length is the client's choice.
    return f"{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"


def deployment_key(database_url: str) -> str:
    """Instances that share a database share counters; other deployments on the same Redis don't.

    The database's name (or SQLite file), not its host, since instances may reach one server
    under different names.
    """
    parts = urlsplit(database_url)
    identity = parts.netloc + parts.path if parts.scheme == "sqlite" else parts.path
    return hashlib.sha256(identity.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why and until when a key is refused."""

    limit: str
    window: int
    reset_at: float

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset_at - time.time()))


class Throttle:
    def __init__(self, settings: Settings, clock: Clock) -> None:
        self._clock = clock
        self._pool: ConnectionPool | None = None
        storage: Storage
        if settings.redis_url:
            # Our own pool: short timeouts, one retry on a fresh connection after Redis restarts,
            # and something to close at shutdown.
            self._pool = ConnectionPool.from_url(
                settings.redis_url,
                socket_connect_timeout=REDIS_TIMEOUT,
                socket_timeout=REDIS_TIMEOUT,
                retry=Retry(NoBackoff(), 1),
            )
            options: dict[str, Any] = {"connection_pool": self._pool}
            storage = RedisStorage(
                f"async+{settings.redis_url}",
                wrap_exceptions=True,
                implementation="redispy",
                key_prefix=f"keyturn:{deployment_key(settings.database_url)}",
                **options,
            )
        else:
            storage = WindowCounters()
        self._limiter = FixedWindowRateLimiter(storage)
        self._memory = storage if isinstance(storage, WindowCounters) else None
        self._store_down = False
        self._window = settings.login_failure_window
        self._login_ip = _per(settings.login_max_attempts_per_ip, LOGIN_IP_WINDOW, "login-ip")
        self._register_ip = _per(settings.register_max_per_ip, REGISTER_IP_WINDOW, "register-ip")
        self._refresh_ip = _per(settings.refresh_max_per_ip, REFRESH_IP_WINDOW, "refresh-ip")
        self._failures = _per(settings.login_max_failures_per_account, self._window, "failures")
        self._lockouts = _per(LOCKOUT_MEMORY, LOCKOUT_MEMORY, "lockouts")

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.disconnect()

    # What the resolvers call.

    @asynccontextmanager
    async def login(self, email: str, client: ClientInfo) -> AsyncIterator[None]:
        """Around one login field: the address's attempts, then the account's failures."""
        await self._take("login_ip", self._login_ip, address_key(client.ip_address), client)
        normalized = normalize_email(email)
        account = account_key("email", normalized)
        async with self._password_attempt(account, client, email=normalized):
            yield

    @asynccontextmanager
    async def password_change(
        self, user_id: uuid.UUID, email: str, client: ClientInfo
    ) -> AsyncIterator[None]:
        """Around one changePassword field: a wrong current password is a failed login of
        that account, on the same counter, so a stolen access token adds no guesses to the
        ones `login` allows."""
        account = account_key("email", normalize_email(email))
        async with self._password_attempt(account, client, user=user_id):
            yield

    @asynccontextmanager
    async def register(self, client: ClientInfo) -> AsyncIterator[None]:
        await self._take("register_ip", self._register_ip, address_key(client.ip_address), client)
        async with self._hashing(client):
            yield

    async def refresh(self, client: ClientInfo) -> None:
        await self._take("refresh_ip", self._refresh_ip, address_key(client.ip_address), client)

    # Account lockout.

    @asynccontextmanager
    async def _password_attempt(
        self,
        account: str,
        client: ClientInfo,
        *,
        email: str | None = None,
        user: uuid.UUID | None = None,
    ) -> AsyncIterator[None]:
        async with self._store():
            reserved = await self._reserve_failure(account)
        if isinstance(reserved, Refusal):
            await self._refuse(reserved, account, client, email=email, user=user)
        try:
            async with self._hashing(client):
                yield
        except AuthError as exc:
            if exc.code in PASSWORD_PROVEN:
                await self._forgive(account)
            elif exc.code not in PASSWORD_REFUSED:
                await self._release(account, reserved)
            raise
        except (Exception, asyncio.CancelledError):
            await self._release(account, reserved)
            raise
        await self._forgive(account)

    async def _reserve_failure(self, account: str) -> Refusal | int:
        """Counts the attempt as a failure before its password is checked, so that concurrent
        attempts cannot all pass a count that each would read before the others' failures;
        the lockout level this attempt raised by filling the window, or 0."""
        refusal = await self._lock(account)
        if refusal is not None:
            return refusal
        if not await self._limiter.hit(self._failures, account):
            # Lost a race with concurrent attempts: the window filled meanwhile.
            stats = await self._limiter.get_window_stats(self._failures, account)
            return Refusal("login_account", self._window, stats.reset_time)
        stats = await self._limiter.get_window_stats(self._failures, account)
        if stats.remaining == 0:
            # This attempt fills the window: should it fail too, the account is locked out.
            stats = await self._hit_and_read(self._lockouts, account)
            level = self._lockouts.amount - stats.remaining
            if level >= 2:
                await self._limiter.hit(self._lock_item(level), account)
            return level
        return 0

    async def _release(self, account: str, raised_level: int) -> None:
        """Takes back the failure an attempt reserved when it ended with no verdict on its
        password: the database down, the hashing queue full, the request cancelled, a bug.
        Such an attempt must not count, or an outage would lock out every owner who kept
        trying; it told the caller nothing about the password either way. When the store
        itself cannot be reached, the failure stays counted."""
        with contextlib.suppress(AuthError):
            async with self._store():
                await self._take_back(self._failures, account)
                if raised_level:
                    await self._take_back(self._lockouts, account)
                if raised_level >= 2:
                    await self._limiter.clear(self._lock_item(raised_level), account)

    async def _take_back(self, item: RateLimitItem, key: str) -> None:
        # Only within the window the hit went to: a new window starts at zero.
        if (await self._limiter.get_window_stats(item, key)).remaining < item.amount:
            await self._limiter.hit(item, key, cost=-1)

    async def _lock(self, account: str) -> Refusal | None:
        failures = await self._limiter.get_window_stats(self._failures, account)
        refusal = None
        if failures.remaining == 0:
            refusal = Refusal("login_account", self._window, failures.reset_time)
        level = await self._lockout_level(account)
        if level >= 2:
            item = self._lock_item(level)
            lock = await self._limiter.get_window_stats(item, account)
            if lock.remaining == 0 and (refusal is None or lock.reset_time > refusal.reset_at):
                refusal = Refusal("login_account", item.get_expiry(), lock.reset_time)
        return refusal

    async def _lockout_level(self, account: str) -> int:
        stats = await self._limiter.get_window_stats(self._lockouts, account)
        return self._lockouts.amount - stats.remaining

    def _lock_item(self, level: int) -> RateLimitItem:
        return _per(1, lockout_seconds(self._window, level), "lock")

    async def _hit_and_read(self, item: RateLimitItem, key: str) -> WindowStats:
        await self._limiter.hit(item, key)
        return await self._limiter.get_window_stats(item, key)

    async def _forgive(self, account: str) -> None:
        """Clears the account's failures once its password was proven right.

        It runs after the attempt's own work has committed (a login's session, a password
        change): should the store fail here, that work stands and its answer goes out. The
        failure it reserved then stays counted, until the next proven password clears it.
        """
        with contextlib.suppress(AuthError):
            await self._clear_failures(account)

    async def _clear_failures(self, account: str) -> None:
        async with self._store():
            level = await self._lockout_level(account)
            await self._limiter.clear(self._failures, account)
            if level:
                await self._limiter.clear(self._lockouts, account)
            if level >= 2:
                await self._limiter.clear(self._lock_item(level), account)

    # Plain per-address limits, and the shared answer.

    async def _take(self, limit: str, item: RateLimitItem, key: str, client: ClientInfo) -> None:
        if self._memory is not None:
            # What FixedWindowRateLimiter.hit does, straight: counters in memory cannot fail,
            # and the limiter's and the store's async layers cost a refresh more than the count.
            if self._memory.add(item.key_for(key), item.get_expiry()) <= item.amount:
                return
        else:
            async with self._store():
                if await self._limiter.hit(item, key):
                    return
        async with self._store():
            stats = await self._limiter.get_window_stats(item, key)
        await self._refuse(Refusal(limit, item.get_expiry(), stats.reset_time), key, client)

    @asynccontextmanager
    async def _hashing(self, client: ClientInfo) -> AsyncIterator[None]:
        try:
            yield
        except PasswordsBusy:
            busy = Refusal("password_hashing", BUSY_WINDOW, time.time() + 1)
            await self._audit_once(busy, "all", client)
            raise

    async def _refuse(
        self,
        refusal: Refusal,
        key: str,
        client: ClientInfo,
        *,
        email: str | None = None,
        user: uuid.UUID | None = None,
    ) -> NoReturn:
        retry_after = refusal.retry_after
        await self._audit_once(refusal, key, client, email=email, user=user)
        raise AuthError(ErrorCode.RATE_LIMITED, retryAfter=retry_after)

    async def _audit_once(
        self,
        refusal: Refusal,
        key: str,
        client: ClientInfo,
        *,
        email: str | None = None,
        user: uuid.UUID | None = None,
    ) -> None:
        """One rate_limited event per key and window: a flood cannot fill the audit table."""
        async with self._store():
            first = await self._limiter.hit(_per(1, refusal.window, "audit"), refusal.limit, key)
        if not first:
            return
        detail: dict[str, Any] = {"limit": refusal.limit, "retry_after": refusal.retry_after}
        if email is not None:
            detail["email"] = clean_text(email[:MAX_EMAIL], MAX_EMAIL)
            if "\x00" not in email and len(email) <= MAX_EMAIL:
                known = await UserRow.get_or_none(email=email).only("id")
                user = known.id if known is not None else None
        await record_event(
            AuditKind.RATE_LIMITED,
            self._clock(),
            user_id=user,
            ip_address=client.ip_address,
            user_agent=client.user_agent,
            detail=detail,
        )

    @asynccontextmanager
    async def _store(self) -> AsyncIterator[None]:
        """Storage failures become SERVICE_UNAVAILABLE, said once in the log, not per request."""
        try:
            yield
        except (StorageError, RuntimeError) as exc:
            # limits wraps redis-py's errors, but not uvloop's for a connection Redis has just
            # closed, which comes as it is.
            if isinstance(exc, RuntimeError) and not is_redis_failure(exc):
                raise  # a bug, not the store
            cause = exc.storage_error if isinstance(exc, StorageError) else exc
            if not self._store_down:
                self._store_down = True
                logger.warning(
                    "rate-limit store cannot be reached (%s): login, register, refresh and "
                    "changePassword answer SERVICE_UNAVAILABLE until it is back",
                    describe(cause),
                )
            raise AuthError(ErrorCode.SERVICE_UNAVAILABLE) from None
        if self._store_down:
            self._store_down = False
            logger.warning("rate-limit store reachable again")
