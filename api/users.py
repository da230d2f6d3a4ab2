"""Creating users and checking what they are made of."""

from __future__ import annotations

import uuid
from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from tortoise.exceptions import IntegrityError

from api.errors import bad_input
from api.passwords import Passwords, validate_password
from models import Role
from models import User as UserRow
from models.users import normalize_email

MAX_EMAIL_LENGTH = 254


def checked_email(email: str) -> str:
    """The stored form of an email (trimmed, lower-cased), or BAD_USER_INPUT."""
    normalized = normalize_email(email)
    if "\x00" in normalized or len(normalized) > MAX_EMAIL_LENGTH:
        raise bad_input("email", "Enter a valid email address.")
    try:
        validate_email(normalized, check_deliverability=False)
    except EmailNotValidError:
        raise bad_input("email", "Enter a valid email address.") from None
    return normalized


def parse_id(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise bad_input(field, f"{field} is not a valid id.") from None


async def insert_user(email: str, password_hash: str, role: Role, now: datetime) -> UserRow:
    """Insert a user whose email was checked; a taken email is BAD_USER_INPUT."""
    if await UserRow.exists(email=email):
        raise bad_input("email", "This email is already registered.")
    try:
        return await UserRow.create(
            email=email,
            password_hash=password_hash,
            role=role,
            is_active=True,
            token_version=0,
            created_at=now,
            updated_at=now,
            password_changed_at=now,
        )
    except IntegrityError:
        # Lost a race with a concurrent insert of the same email.
        raise bad_input("email", "This email is already registered.") from None


async def prepare_user(passwords: Passwords, email: str, password: str) -> tuple[str, str]:
    """Validate the input and hash the password, before any transaction opens."""
    normalized = checked_email(email)
    validate_password(password, user_inputs=[normalized])
    return normalized, await passwords.hash(password)
