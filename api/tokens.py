"""Access and refresh JWTs (RFC 8725): HS256 only, a key per kind, `typ` and every claim checked.

Signing and verifying go through `api.jws`, not PyJWT: PyJWT's general-purpose decode cost about
155 µs a token (a per-character base64 check and re-vetting the key on every call), three times
per refresh. The codec accepts only the one header we write, which is stricter; PyJWT remains
the independent reference the tests compare against. Claims and times are checked here, times
against the injected clock so that tests can move time without sleeping.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from api.jws import HS256Codec, JWSInvalid
from models.ids import SpelledUUID, random_hex

if TYPE_CHECKING:
    from api.settings import Settings

ACCESS_TYP = "at+jwt"
REFRESH_TYP = "rt+jwt"
MAX_TOKEN_LENGTH = 4096
# The last second a datetime can hold: a later `exp` is malformed, not merely far away, and would
# overflow when turned into a datetime.
MAX_TIMESTAMP = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())

ACCESS_CLAIMS = ("iss", "aud", "sub", "sid", "ver", "role", "iat", "exp", "jti")
REFRESH_CLAIMS = ("iss", "aud", "sub", "sid", "jti", "ver", "iat", "exp")


class TokenInvalid(Exception):
    """Not a token of the expected kind, validly signed: the reason is never shown to clients."""


class TokenExpired(Exception):
    pass


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    token_version: int
    role: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class RefreshClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    token_id: uuid.UUID
    token_version: int
    issued_at: datetime
    expires_at: datetime


def _key_id(prefix: str, secret: bytes) -> str:
    return f"{prefix}-{hashlib.sha256(secret).hexdigest()[:12]}"


def _timestamp(moment: datetime) -> int:
    return int(moment.timestamp())


def _from_timestamp(value: int) -> datetime:
    return datetime.fromtimestamp(value, UTC)


class _Signer:
    def __init__(
        self,
        secret: bytes,
        typ: str,
        claims: tuple[str, ...],
        kid_prefix: str,
        issuer: str,
        audience: str,
    ) -> None:
        self._codec = HS256Codec(secret, typ=typ, kid=_key_id(kid_prefix, secret))
        self._required = claims
        self._issuer = issuer
        self._audience = audience

    def encode(self, claims: dict[str, Any]) -> str:
        return self._codec.sign({"iss": self._issuer, "aud": self._audience, **claims})

    def decode(self, token: str, now: datetime) -> dict[str, Any]:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise TokenInvalid("length")
        try:
            # `typ` and `kid` need no check here: the codec accepts only the exact header segment
            # it writes, and that holds both, so the other kind's tokens never get past it.
            payload = self._codec.verify(token)
        except JWSInvalid as exc:
            raise TokenInvalid(str(exc)) from exc
        # A null claim counts as missing, as it did with PyJWT's `require`.
        for claim in self._required:
            if payload.get(claim) is None:
                raise TokenInvalid("missing claim")
        # Plain equality, so a list `aud`, even ["keyturn"], is refused (PyJWT's strict_aud).
        if payload.get("iss") != self._issuer or payload.get("aud") != self._audience:
            raise TokenInvalid("iss or aud")
        # PyJWT also insisted on string `sub` and `jti`; the access check never parses `jti`.
        if type(payload.get("sub")) is not str or type(payload.get("jti")) is not str:
            raise TokenInvalid("sub or jti")
        exp, iat = payload["exp"], payload["iat"]
        if type(exp) is not int or type(iat) is not int or not 0 <= iat < exp <= MAX_TIMESTAMP:
            raise TokenInvalid("times")
        if _timestamp(now) >= exp:
            raise TokenExpired
        return payload


class TokenService:
    def __init__(
        self,
        *,
        access_secret: bytes,
        refresh_secret: bytes,
        issuer: str,
        audience: str,
        access_ttl: int,
        refresh_ttl: int,
    ) -> None:
        if access_secret == refresh_secret:
            raise ValueError("access and refresh tokens need different secrets")
        self.access_ttl = timedelta(seconds=access_ttl)
        self.refresh_ttl = timedelta(seconds=refresh_ttl)
        self._access = _Signer(access_secret, ACCESS_TYP, ACCESS_CLAIMS, "at", issuer, audience)
        self._refresh = _Signer(refresh_secret, REFRESH_TYP, REFRESH_CLAIMS, "rt", issuer, audience)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenService:
        return cls(
            access_secret=settings.access_secret(),
            refresh_secret=settings.refresh_secret(),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            access_ttl=settings.access_token_ttl,
            refresh_ttl=settings.refresh_token_ttl,
        )

    def issue_access(
        self,
        *,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        token_version: int,
        role: str,
        now: datetime,
    ) -> tuple[str, datetime]:
        issued = _timestamp(now)
        expires = issued + int(self.access_ttl.total_seconds())
        token = self._access.encode(
            {
                "sub": str(user_id),
                "sid": str(session_id),
                "ver": token_version,
                "role": role,
                "iat": issued,
                "exp": expires,
                "jti": random_hex(),
            }
        )
        return token, _from_timestamp(expires)

    def issue_refresh(
        self,
        *,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        token_id: uuid.UUID,
        token_version: int,
        issued_at: datetime,
    ) -> tuple[str, datetime]:
        """Deterministic for its inputs: the same session state always yields the same token."""
        issued = _timestamp(issued_at)
        expires = issued + int(self.refresh_ttl.total_seconds())
        token = self._refresh.encode(
            {
                "sub": str(user_id),
                "sid": str(session_id),
                "jti": str(token_id),
                "ver": token_version,
                "iat": issued,
                "exp": expires,
            }
        )
        return token, _from_timestamp(expires)

    def verify_access(self, token: str, now: datetime) -> AccessClaims:
        claims = self._access.decode(token, now)
        try:
            return AccessClaims(
                user_id=uuid.UUID(claims["sub"]),
                session_id=uuid.UUID(claims["sid"]),
                token_version=_int(claims["ver"]),
                role=_str(claims["role"]),
                expires_at=_from_timestamp(claims["exp"]),
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise TokenInvalid("claims") from exc

    def verify_refresh(self, token: str, now: datetime) -> RefreshClaims:
        claims = self._refresh.decode(token, now)
        try:
            return RefreshClaims(
                # Each spelled again in the rotation, its event and the new tokens.
                user_id=SpelledUUID(claims["sub"]),
                session_id=SpelledUUID(claims["sid"]),
                token_id=SpelledUUID(claims["jti"]),
                token_version=_int(claims["ver"]),
                issued_at=_from_timestamp(claims["iat"]),
                expires_at=_from_timestamp(claims["exp"]),
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise TokenInvalid("claims") from exc


def _int(value: object) -> int:
    if type(value) is not int:
        raise TypeError("not an integer")
    return value


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value
