"""Managing accounts: creating users and ending all of a user's sessions (admin and CLI)."""

from __future__ import annotations

import uuid

from tortoise.transactions import in_transaction

from api.clients import ClientInfo
from api.clock import Clock, utc_now
from api.errors import AuthError, ErrorCode
from api.passwords import Passwords
from api.users import checked_email, insert_user, prepare_user
from models import AuditKind, Role
from models import User as UserRow
from models.audit import record_event
from models.users import bump_token_version


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


async def revoke_user_sessions_by_email(email: str, clock: Clock = utc_now) -> UserRow:
    """The command line's `users revoke-sessions`: bump the user's token_version."""
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
