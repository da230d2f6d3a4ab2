"""What may reach a log line: client text escaped, secrets cut out.

Keyturn never logs request bodies, query strings, cookies or the Authorization header. What it
does log (a path, an exception from a bug) goes through these two functions first.
"""

from __future__ import annotations

import logging
import re

MAX_LOGGED_TEXT = 200

# Anything shaped like a JWT, an argon2 hash or a bearer credential, and the value after a
# secret-sounding name (`password=`, `"refreshToken": "`); whole Cookie and
# Authorization header values.
_SECRETS = re.compile(
    r"eyJ[\w-]*\.[\w-]*\.[\w-]*"
    r"|\$argon2(?:id|i|d)\$\S+"
    r"|(?i:bearer)\s+\S+"
    r"|(?P<header>(?i:authorization|cookie|set-cookie)\s*[:=]\s*)[^\r\n]+"
    r"|(?P<name>(?i:password|passwd|secret|token|cookie|authorization)\w*[\"']?\s*[:=]\s*[\"']?)"
    r"[^\s\"',;&}]+"
)


def redact(text: str) -> str:
    """The text with every secret-shaped part replaced by [redacted]."""
    return _SECRETS.sub(_mask, text)


def _mask(match: re.Match[str]) -> str:
    return f"{match.group('header') or match.group('name') or ''}[redacted]"


def escape(text: str, limit: int = MAX_LOGGED_TEXT) -> str:
    """Client-supplied text as one printable, bounded, secret-free line.

    Newlines and other control or non-ASCII characters become escapes, so a client can neither
    forge a log line nor hide one.
    """
    shortened = text[:limit]
    escaped = shortened.encode("ascii", "backslashreplace").decode("ascii")
    escaped = "".join(char if char.isprintable() else f"\\x{ord(char):02x}" for char in escaped)
    return redact(escaped) + ("..." if len(text) > limit else "")


def configure_server_logging() -> None:
    """Keyturn's own lines (access, warnings, masked errors with request ids) at INFO.

    Called in each server process: uvicorn configures only its own loggers, and workers are
    fresh processes that never ran the command line's set-up.
    """
    logger = logging.getLogger("keyturn")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO)
