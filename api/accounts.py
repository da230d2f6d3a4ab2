"""Managing accounts: creating users, ending their sessions, activation and roles.

Used by the admin GraphQL API and the command line. Every change is audited with its actor in
the same transaction; admin calls check the actor's role (read from the database) here too, so
no path reaches these functions without it.
"""

from __future__ import annotations

import uuid
from typing import Any

from tortoise.transactions import in_transaction

from api.access import Principal
from api.clients import ClientInfo
from api.clock import Clock, utc_now
from api.errors import AuthError, ErrorCode, bad_input
from api.passwords import Passwords
from api.runtime import Keyturn
from api.users import checked_email, insert_user, parse_id, prepare_user
from models import AuditKind, Role
from models import Session as SessionRow
from models import User as UserRow
from models.audit import record_event
from models.sessions import bump_token_version, revoke_session
from models.users import is_active_admin, lock_with_admins

REASON_ADMIN = "admin"


def require_admin(actor: Principal) -> None:
    if not actor.is_admin:
        raise AuthError(ErrorCode.FORBIDDEN, "Administrators only.")


async def create_user(
    passwords: Passwords,
    email: str,
    password: str,
    role: Role,
    *,
    actor_id: uuid.UUID | None,
    via: str,
    client: ClientInfo | None = None,
    clock: Clock = utc_now,
) -> UserRow:
    normalized, password_hash = await prepare_user(passwords, email, password)
    now = clock()
    client = client or ClientInfo()
    async with in_transaction():
        user = await insert_user(normalized, password_hash, role, now)
        await record_event(
            AuditKind.USER_CREATED,
            now,
            user_id=user.id,
            actor_id=actor_id,
            ip_address=client.ip_address,
            user_agent=client.user_agent,
            detail={"role": role.value, "via": via},
        )
    return user


async def admin_create_user(
    kt: Keyturn, actor: Principal, email: str, password: str, role: Role, client: ClientInfo
) -> UserRow:
    require_admin(actor)
    return await create_user(
        kt.passwords,
        email,
        password,
        role,
        actor_id=actor.user_id,
        via="admin",
        client=client,
        clock=kt.clock,
    )


async def _audit(
    kind: AuditKind, kt: Keyturn, actor: Principal, client: ClientInfo, **fields: Any
) -> None:
    await record_event(
        kind,
        kt.clock(),
        actor_id=actor.user_id,
        ip_address=client.ip_address,
        user_agent=client.user_agent,
        **fields,
    )


async def _target(user_id: str) -> UserRow:
    user = await UserRow.get_or_none(id=parse_id(user_id, "userId"))
    if user is None:
        raise AuthError(ErrorCode.NOT_FOUND, "No such user.")
    return user


async def revoke_session_as_admin(
    kt: Keyturn, actor: Principal, session_id: str, client: ClientInfo
) -> tuple[SessionRow, UserRow]:
    require_admin(actor)
    sid = parse_id(session_id, "sessionId")
    async with in_transaction():
        session = await SessionRow.get_or_none(id=sid).select_related("user")
        if session is None:
            raise AuthError(ErrorCode.NOT_FOUND, "No such session.")
        if await revoke_session(sid, REASON_ADMIN, kt.clock(), session.user.token_version):
            await _audit(
                AuditKind.SESSION_REVOKED,
                kt,
                actor,
                client,
                user_id=session.user_id,
                session_id=sid,
            )
        await session.refresh_from_db()
    kt.access.forget_session(sid)
    return session, session.user


async def revoke_user_sessions(
    kt: Keyturn, actor: Principal, user_id: str, client: ClientInfo
) -> UserRow:
    require_admin(actor)
    user = await _target(user_id)
    async with in_transaction():
        user.token_version = await bump_token_version(user.id, kt.clock())
        await _audit(
            AuditKind.USER_SESSIONS_REVOKED,
            kt,
            actor,
            client,
            user_id=user.id,
            detail={"token_version": user.token_version},
        )
    kt.access.forget_user(user.id)
    return user


async def revoke_user_sessions_by_email(email: str, clock: Clock = utc_now) -> UserRow:
    """The command line's `users revoke-sessions`: what revokeUserSessions does, actor "cli"."""
    user = await UserRow.get_or_none(email=checked_email(email))
    if user is None:
        raise AuthError(ErrorCode.NOT_FOUND, f"no user with email {email.strip().lower()}")
    now = clock()
    async with in_transaction():
        user.token_version = await bump_token_version(user.id, now)
        await record_event(
            AuditKind.USER_SESSIONS_REVOKED,
            now,
            user_id=user.id,
            detail={"actor": "cli", "token_version": user.token_version},
        )
    return user


async def _locked_user(uid: uuid.UUID, *, removing_an_admin: bool = False) -> UserRow:
    """The user row, locked until the transaction ends (PostgreSQL), or NOT_FOUND.

    `removing_an_admin` (a deactivation or a demotion) locks the other active admins too, and
    refuses to remove the last one: an installation must never lock itself out.
    """
    if not removing_an_admin:
        user = await UserRow.filter(id=uid).select_for_update(no_key=True).first()
        if user is None:
            raise AuthError(ErrorCode.NOT_FOUND, "No such user.")
        return user
    found, other_admins = await lock_with_admins(uid)
    if found is None:
        raise AuthError(ErrorCode.NOT_FOUND, "No such user.")
    if is_active_admin(found) and other_admins == 0:
        raise bad_input("userId", "This is the last active admin: promote another user first.")
    return found


async def set_user_active(
    kt: Keyturn, actor: Principal, user_id: str, is_active: bool, client: ClientInfo
) -> UserRow:
    require_admin(actor)
    uid = parse_id(user_id, "userId")
    now = kt.clock()
    async with in_transaction():
        user = await _locked_user(uid, removing_an_admin=not is_active)
        if user.is_active == is_active:
            return user
        await UserRow.filter(id=uid).update(is_active=is_active, updated_at=now)
        user.is_active = is_active
        if not is_active:
            # Deactivation ends every session too, so reactivation does not revive them.
            user.token_version = await bump_token_version(uid, now)
        kind = AuditKind.USER_ACTIVATED if is_active else AuditKind.USER_DEACTIVATED
        await _audit(kind, kt, actor, client, user_id=uid)
    kt.access.forget_user(uid)
    return user


async def set_user_role(
    kt: Keyturn, actor: Principal, user_id: str, role: Role, client: ClientInfo
) -> UserRow:
    require_admin(actor)
    uid = parse_id(user_id, "userId")
    now = kt.clock()
    async with in_transaction():
        user = await _locked_user(uid, removing_an_admin=role is not Role.ADMIN)
        if user.role is role:
            return user
        previous = user.role
        await UserRow.filter(id=uid).update(role=role, updated_at=now)
        user.role = role
        await _audit(
            AuditKind.ROLE_CHANGED,
            kt,
            actor,
            client,
            user_id=uid,
            detail={"from": previous.value, "to": role.value},
        )
    kt.access.forget_user(uid)
    return user
