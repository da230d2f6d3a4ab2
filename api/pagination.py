"""Keyset pagination: opaque cursors and the bounds on `first`."""

from __future__ import annotations

import base64
import json
from typing import Any

from api.clients import is_unicode_text
from api.errors import bad_input

MAX_PAGE_SIZE = 100


def check_first(first: int) -> int:
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise bad_input("first", f"first must be between 1 and {MAX_PAGE_SIZE}.")
    return first


def encode_cursor(*key: Any) -> str:
    raw = json.dumps([str(part) for part in key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, parts: int) -> list[str] | None:
    """The key a cursor stands for; BAD_USER_INPUT when it is not one of ours."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeError):
        raise bad_input("after", "after is not a valid cursor.") from None
    if not isinstance(key, list) or len(key) != parts or not all(isinstance(k, str) for k in key):
        raise bad_input("after", "after is not a valid cursor.")
    if any("\x00" in part or not is_unicode_text(part) for part in key):
        # PostgreSQL refuses NUL in text, and no database takes a lone surrogate (which
        # json.loads makes of `\\ud800`); no cursor of ours ever holds either.
        raise bad_input("after", "after is not a valid cursor.")
    return key
