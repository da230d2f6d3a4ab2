"""The token lifecycle: login, register, refresh with rotation, logout, password change.

Plain async functions over the models; each state change runs in one transaction together with
its audit event. They know nothing of GraphQL or HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.transactions import in_transaction

from api.access import Principal
from api.clients import ClientInfo, clean_text
from api.errors import AuthError, ErrorCode
from api.passwords import MAX_PASSWORD_LENGTH, validate_password
from api.runtime import Keyturn
from api.tokens import RefreshClaims, TokenExpired, TokenInvalid
from api.users import insert_user, parse_id, prepare_user
from models import AuditKind, Role
from models import Session as SessionRow
from models import User as UserRow
from models.audit import event_values, insert_event
from models.ids import random_uuid
from models.sessions import (
    Rotation,
    active_sessions,
    bump_token_version,
    revoke_session,
    rotate_refresh_token,
    session_with_user,
)
from models.users import normalize_email

REASON_LOGOUT = "logout"
REASON_REUSE = "reuse_detected"
REASON_USER = "revoked_by_user"


@dataclass(frozen=True, slots=True)
class AuthResult:
    """A new token pair, and the user and session it was issued for.

    `rows` gives the user and the session as models. A refresh reads them as one raw row and
    decodes it only if asked: most refreshes select the tokens alone, and on SQLite decoding the
    two rows (ten timestamps parsed from text) costs about as much as the rotation's own SQL.
    """

    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime
    rows: Callable[[], tuple[UserRow, SessionRow]]

    @property
    def user(self) -> UserRow:
        return self.rows()[0]

    @property
    def session(self) -> SessionRow:
        return self.rows()[1]


def _whole_seconds(moment: datetime) -> datetime:
    # Refresh JWTs carry whole seconds; the session keeps the same instant so the current
    # token can be re-signed byte for byte from the row (see the grace window in `refresh`).
    return moment.replace(microsecond=0)


async def _open_session(
    kt: Keyturn, user: UserRow, client: ClientInfo, now: datetime
) -> AuthResult:
    issued = _whole_seconds(now)
    settings = kt.settings
    session = await SessionRow.create(
        user_id=user.id,
        token_version=user.token_version,
        current_token_id=random_uuid(),
        rotated_at=issued,
        created_at=issued,
        last_used_at=issued,
        expires_at=issued + timedelta(seconds=settings.refresh_token_ttl),
        absolute_expires_at=issued + timedelta(seconds=settings.session_max_age),
        ip_address=client.ip_address,
        user_agent=client.user_agent,
    )
    return _issue(kt, user, session, now)


def _issue(kt: Keyturn, user: UserRow, session: SessionRow, now: datetime) -> AuthResult:
    access, access_exp = kt.tokens.issue_access(
        user_id=user.id,
        session_id=session.id,
        token_version=session.token_version,
        role=user.role.value,
        now=now,
    )
    refresh, refresh_exp = kt.tokens.issue_refresh(
        user_id=user.id,
        session_id=session.id,
        token_id=session.current_token_id,
        token_version=session.token_version,
        issued_at=session.rotated_at,
    )
    return AuthResult(access, access_exp, refresh, refresh_exp, lambda: (user, session))


def _event(kind: AuditKind, now: datetime, client: ClientInfo, **fields: Any) -> list[Any]:
    """An audit event's parameters, with the calling client's address and agent."""
    return event_values(
        kind, now, ip_address=client.ip_address, user_agent=client.user_agent, **fields
    )


async def _audit(kind: AuditKind, now: datetime, client: ClientInfo, **fields: Any) -> None:
    await insert_event(_event(kind, now, client, **fields))


async def login(kt: Keyturn, email: str, password: str, client: ClientInfo) -> AuthResult:
    now = kt.clock()
    normalized = normalize_email(email)
    user = None
    if "\x00" not in normalized and len(normalized) <= 254:
        user = await UserRow.get_or_none(email=normalized)
    # An unknown email verifies against a dummy hash: same answer, same time.
    too_long = len(password) > MAX_PASSWORD_LENGTH
    matches = await kt.passwords.verify(
        None if user is None or too_long else user.password_hash, password[:MAX_PASSWORD_LENGTH]
    )
    if not matches or user is None:
        async with in_transaction():
            await _audit(
                AuditKind.LOGIN_FAILED,
                now,
                client,
                user_id=user.id if user else None,
                detail=None if user else {"email": clean_text(normalized, 254)},
            )
        raise AuthError(ErrorCode.INVALID_CREDENTIALS)
    if not user.is_active:
        async with in_transaction():
            await _audit(
                AuditKind.LOGIN_FAILED,
                now,
                client,
                user_id=user.id,
                detail={"reason": "account_disabled"},
            )
        raise AuthError(ErrorCode.ACCOUNT_DISABLED)
    upgraded_hash = (
        await kt.passwords.hash(password) if kt.passwords.needs_rehash(user.password_hash) else None
    )
    async with in_transaction():
        changes: dict[str, object] = {"last_login_at": now}
        if upgraded_hash is not None:
            changes["password_hash"] = upgraded_hash
        await UserRow.filter(id=user.id).update(**changes)
        user.last_login_at = now
        result = await _open_session(kt, user, client, now)
        await _audit(
            AuditKind.LOGIN_SUCCEEDED,
            now,
            client,
            user_id=user.id,
            session_id=result.session.id,
        )
    # The user's other sessions answer `me` from their cached check: show them this login now.
    kt.access.drop_user(user.id)
    return result


async def register(kt: Keyturn, email: str, password: str, client: ClientInfo) -> AuthResult:
    if not kt.settings.registration_open:
        raise AuthError(ErrorCode.REGISTRATION_CLOSED)
    normalized, password_hash = await prepare_user(kt.passwords, email, password)
    now = kt.clock()
    async with in_transaction():
        user = await insert_user(normalized, password_hash, Role.USER, now)
        user.last_login_at = now
        await UserRow.filter(id=user.id).update(last_login_at=now)
        result = await _open_session(kt, user, client, now)
        await _audit(
            AuditKind.REGISTERED,
            now,
            client,
            user_id=user.id,
            session_id=result.session.id,
        )
    return result


def _verify_refresh(kt: Keyturn, token: str, now: datetime) -> RefreshClaims:
    try:
        return kt.tokens.verify_refresh(token, now)
    except (TokenInvalid, TokenExpired):
        raise AuthError(ErrorCode.INVALID_REFRESH_TOKEN) from None


def _session_alive(session: SessionRow, user: UserRow, now: datetime) -> bool:
    return (
        session.revoked_at is None
        and user.is_active
        and session.token_version == user.token_version
        and now < session.expires_at
        and now < session.absolute_expires_at
    )


async def refresh(kt: Keyturn, token: str, client: ClientInfo) -> AuthResult:
    """Rotate a refresh token; see docs/tokens.md for the rules this implements.

    The usual case, the session's current token on a live session, is one round trip: a
    compare-and-set that holds only while the session is alive, with its audit event
    (`rotate_refresh_token`). Every other case, and a compare-and-set that loses, is judged
    again inside one transaction.
    """
    now = kt.clock()
    claims = _verify_refresh(kt, token, now)
    rotated = await _rotate(kt, claims, client, now)
    if rotated is not None:
        return rotated
    return await _refresh_judged(kt, claims, client, now)


def _alive_or_refuse(
    found: tuple[SessionRow, UserRow] | None, claims: RefreshClaims, now: datetime
) -> tuple[SessionRow, UserRow]:
    if found is None or found[0].user_id != claims.user_id:
        raise AuthError(ErrorCode.INVALID_REFRESH_TOKEN)
    session, user = found
    if not _session_alive(session, user, now) or claims.token_version != session.token_version:
        raise AuthError(ErrorCode.INVALID_REFRESH_TOKEN)
    return session, user


async def _rotate(
    kt: Keyturn, claims: RefreshClaims, client: ClientInfo, now: datetime
) -> AuthResult | None:
    """Rotate `claims`' token if it is its live session's current one; None otherwise.

    A revocation committed while this runs either comes first (the compare-and-set then finds
    the session ended) or after, exactly as if this refresh had committed first: the tokens it
    returns then fail the access check and the next refresh.
    """
    issued = _whole_seconds(now)
    rotation = Rotation(
        session_id=claims.session_id,
        user_id=claims.user_id,
        presented_token_id=claims.token_id,
        token_version=claims.token_version,
        new_token_id=random_uuid(),
        issued_at=issued,
        expires_at=issued + timedelta(seconds=kt.settings.refresh_token_ttl),
        now=now,
    )
    # The new refresh token is signed before the write: a failure here leaves the presented
    # token current, instead of turning it into one whose reuse revokes the session. (The
    # access token carries the role, read by the write itself; a retry within the grace
    # window gets the pair should its signing ever fail.)
    refresh_token, refresh_expires = kt.tokens.issue_refresh(
        user_id=claims.user_id,
        session_id=claims.session_id,
        token_id=rotation.new_token_id,
        token_version=claims.token_version,
        issued_at=issued,
    )
    event = _event(
        AuditKind.REFRESHED, now, client, user_id=claims.user_id, session_id=claims.session_id
    )
    try:
        rotated = await rotate_refresh_token(rotation, event)
    except BaseException:
        # No answer, but the write may have committed all the same: its retry must not read
        # as theft (api/lost_rotations.py).
        kt.lost_rotations.remember(claims.session_id, claims.token_id, rotation.new_token_id)
        raise
    if rotated is None:
        return None
    access_token, access_expires = kt.tokens.issue_access(
        user_id=claims.user_id,
        session_id=claims.session_id,
        token_version=claims.token_version,  # the write's condition: the session's and user's
        role=rotated.role.value,
        now=now,
    )
    return AuthResult(
        access_token, access_expires, refresh_token, refresh_expires, rotated.user_and_session
    )


async def _refresh_judged(
    kt: Keyturn, claims: RefreshClaims, client: ClientInfo, now: datetime
) -> AuthResult:
    """A token that is not (or no longer) current: a race lost, a second tab, or a replay."""
    reuse_detected = False
    lost = await kt.lost_rotations.written_for(claims.session_id, claims.token_id)
    handed: AuthResult | None = None
    async with in_transaction():
        session, user = _alive_or_refuse(await session_with_user(claims.session_id), claims, now)
        if claims.token_id == session.current_token_id:
            # Cannot be: a token that was not current never becomes so, and a compare-and-set
            # loses only to a rotation or an end of the session. Refused, never judged reuse.
            raise AuthError(ErrorCode.INVALID_REFRESH_TOKEN)

        grace = kt.settings.refresh_reuse_grace
        previous = claims.token_id == session.previous_token_id
        # The retry of a rotation that committed while its answer was lost (the client heard
        # SERVICE_UNAVAILABLE): the pair it wrote, which nobody had received.
        lost_answer = previous and session.current_token_id in lost
        if (
            grace > 0
            and previous
            # rotated_at is the rotation's whole second, as its token's iat: measured from
            # there on whole seconds too, the window is never shorter than the setting (it was
            # up to a second short: 0.14 s with a grace of 1).
            and _whole_seconds(now) - session.rotated_at <= timedelta(seconds=grace)
        ) or lost_answer:
            # A second tab or a retry: hand back the session's current pair, the very token the
            # winner received, so the session never has two live chains.
            handed = _issue(kt, user, session, now)
        else:
            reuse_detected = await revoke_session(session.id, REASON_REUSE, now, user.token_version)
            if reuse_detected:
                await _audit(
                    AuditKind.REFRESH_REUSE_DETECTED,
                    now,
                    client,
                    user_id=user.id,
                    session_id=session.id,
                    detail={
                        "token_issued_at": claims.issued_at.isoformat(),
                        "was_previous": previous,
                    },
                )
    if handed is not None:
        if lost_answer:
            # Answered, after the commit (an answer that failed uses nothing up): from now on
            # the token has the grace window's tolerance, no more, inside the window or after.
            kt.lost_rotations.handed_back(claims.session_id, claims.token_id)
        return handed
    # Raised after the commit: the revocation and its audit event must persist.
    kt.access.forget_session(claims.session_id)
    if reuse_detected:
        raise AuthError(ErrorCode.REFRESH_TOKEN_REUSED)
    raise AuthError(ErrorCode.INVALID_REFRESH_TOKEN)


async def logout(
    kt: Keyturn, refresh_token: str | None, principal: Principal | None, client: ClientInfo
) -> None:
    """End one session: the refresh token's, else the signed-in caller's."""
    now = kt.clock()
    if refresh_token is not None:
        claims = _verify_refresh(kt, refresh_token, now)
        session_id, user_id = claims.session_id, claims.user_id
    elif principal is not None:
        session_id, user_id = principal.session_id, principal.user_id
    else:
        raise AuthError(ErrorCode.INVALID_REFRESH_TOKEN)
    async with in_transaction():
        session = await SessionRow.get_or_none(id=session_id, user_id=user_id).select_related(
            "user"
        )
        if session is None:
            raise AuthError(ErrorCode.INVALID_REFRESH_TOKEN)
        if await revoke_session(session_id, REASON_LOGOUT, now, session.user.token_version):
            await _audit(
                AuditKind.LOGGED_OUT,
                now,
                client,
                user_id=user_id,
                session_id=session_id,
            )
    kt.access.forget_session(session_id)


async def logout_all(kt: Keyturn, principal: Principal, client: ClientInfo) -> None:
    now = kt.clock()
    async with in_transaction():
        version = await bump_token_version(principal.user_id, now)
        await _audit(
            AuditKind.LOGGED_OUT_ALL,
            now,
            client,
            user_id=principal.user_id,
            session_id=principal.session_id,
            detail={"token_version": version},
        )
    kt.access.forget_user(principal.user_id)


async def change_password(
    kt: Keyturn, principal: Principal, current: str, new: str, client: ClientInfo
) -> AuthResult:
    user = await UserRow.get(id=principal.user_id)
    if len(current) > MAX_PASSWORD_LENGTH or not await kt.passwords.verify(
        user.password_hash, current
    ):
        # A failed password check of this account, as a wrong login is, with the session whose
        # access token tried: the one to end should it be stolen.
        async with in_transaction():
            await _audit(
                AuditKind.LOGIN_FAILED,
                kt.clock(),
                client,
                user_id=user.id,
                session_id=principal.session_id,
                detail={"reason": "wrong_current_password"},
            )
        raise AuthError(ErrorCode.INVALID_CREDENTIALS, "The current password is wrong.")
    validate_password(new, field="newPassword", user_inputs=[user.email])
    new_hash = await kt.passwords.hash(new)
    now = kt.clock()
    async with in_transaction():
        await UserRow.filter(id=user.id).update(
            password_hash=new_hash, password_changed_at=now, updated_at=now
        )
        user.token_version = await bump_token_version(user.id, now)
        result = await _open_session(kt, user, client, now)
        await _audit(
            AuditKind.PASSWORD_CHANGED,
            now,
            client,
            user_id=user.id,
            session_id=result.session.id,
        )
    kt.access.forget_user(user.id)
    return result


async def revoke_my_session(
    kt: Keyturn, principal: Principal, session_id: str, client: ClientInfo
) -> SessionRow:
    sid = parse_id(session_id, "sessionId")
    now = kt.clock()
    async with in_transaction():
        session = await SessionRow.get_or_none(id=sid)
        if session is None:
            raise AuthError(ErrorCode.NOT_FOUND)
        if session.user_id != principal.user_id:
            raise AuthError(ErrorCode.FORBIDDEN, "You can only revoke your own sessions.")
        if await revoke_session(sid, REASON_USER, now, principal.token_version):
            await _audit(
                AuditKind.SESSION_REVOKED,
                now,
                client,
                user_id=principal.user_id,
                session_id=sid,
            )
        await session.refresh_from_db()
    kt.access.forget_session(sid)
    return session


async def my_sessions(kt: Keyturn, principal: Principal) -> list[SessionRow]:
    return await active_sessions(principal.user_id, principal.token_version, kt.clock()).order_by(
        "-last_used_at", "id"
    )
