"""What may reach a log line: client text escaped, secrets cut out.

Keyturn never logs request bodies, query strings, cookies or the Authorization header. What it
does log (a path, an exception from a bug) goes through these two functions first.
"""

from __future__ import annotations

import logging
import re
from typing import Any

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


LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class OutageInOneLine(logging.Filter):
    """A library's warning about the database being unreachable, as one line with its cause.

    asyncpg's pool retries its connections while PostgreSQL is down and logs each failure with a
    30-line traceback of its own connect path: nothing in it helps, and it buried Keyturn's own
    lines during an outage. A failure that is not the database being unreachable keeps its
    traceback, as a bug should.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.name.startswith("asyncpg"):
            from api.db import is_unavailable

            exc = record.exc_info[1]
            if exc is not None and is_unavailable(exc):
                record.msg = f"{record.getMessage()} ({type(exc).__name__}: {exc})"
                record.args = None
                record.exc_info = None
                record.exc_text = None
        return True


def server_log_config() -> dict[str, Any]:
    """uvicorn's `log_config` for `keyturn serve`: every line with its time, in one format.

    uvicorn's own lines ("Started server process", a worker that died) and those of the
    libraries underneath (asyncpg, tortoise, redis) otherwise carry no time at all, which an
    operator reading about an outage needs first. Keyturn's own logger is set up per process
    by `configure_server_logging`, in the same format.
    """

    def stderr(formatter: str) -> dict[str, Any]:
        return {
            "class": "logging.StreamHandler",
            "formatter": formatter,
            "stream": "ext://sys.stderr",
            "filters": ["outage"],
        }

    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "line": {"format": LINE_FORMAT},
            # uvicorn logs its start and stop as `uvicorn.error`, which reads as a failure.
            "uvicorn": {"format": LINE_FORMAT.replace("%(name)s", "uvicorn")},
        },
        "filters": {"outage": {"()": OutageInOneLine}},
        "handlers": {"stderr": stderr("line"), "uvicorn": stderr("uvicorn")},
        "loggers": {"uvicorn": {"handlers": ["uvicorn"], "level": "INFO", "propagate": False}},
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }


def configure_server_logging() -> None:
    """Keyturn's own lines (access, warnings, masked errors with request ids) at INFO.

    Called in each server process: uvicorn configures only its own loggers, and workers are
    fresh processes that never ran the command line's set-up.
    """
    logger = logging.getLogger("keyturn")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(LINE_FORMAT))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO)
