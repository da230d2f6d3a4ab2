"""The `keyturn` command line: serve, migrate, manage users, prune, print the schema.

Every failure an operator can cause ends in one clear line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import ValidationError
from tortoise import Tortoise

from api import accounts, maintenance
from api.db import is_unavailable, sqlite_path, tortoise_config
from api.errors import AuthError
from api.logs import LINE_FORMAT, server_log_config
from api.migrations import DatabaseUnavailable, MigrationError, migrate, pending_migrations
from api.passwords import Passwords
from api.revocation import announce_user_revoked
from api.settings import Settings, SettingsError, load_settings
from models import Role
from models import User as UserRow

logger = logging.getLogger("keyturn")

# Seconds `serve` gives requests in flight to finish after SIGTERM (docs/deployment.md).
SHUTDOWN_GRACE = 10
# Users `users list` reads and prints at a time.
LIST_PAGE = 1000

EXIT_USAGE = 2


class CommandError(Exception):
    """A failure to report as one line, without a traceback."""


def _settings() -> Settings:
    dot_env = Path(".env")
    if dot_env.is_symlink() and not dot_env.exists():
        # Read as absent, it would leave every setting at its default: development mode on
        # an empty embedded database, where the link pointed at production's (say, a secret
        # that is not mounted).
        raise CommandError(f".env links to {os.readlink(dot_env)}, which does not exist")
    try:
        return load_settings()
    except UnicodeDecodeError as exc:
        raise CommandError(f"cannot read .env: {exc}") from None
    except OSError as exc:  # .env unreadable, or the development secrets' folder
        raise CommandError(
            f"cannot read {exc.filename or 'the settings'}: {exc.strerror}"
        ) from None
    except ValidationError as exc:
        messages = [str(err.get("msg", "")).removeprefix("Value error, ") for err in exc.errors()]
        locations = [".".join(str(p) for p in err.get("loc", ())) for err in exc.errors()]
        lines = [
            msg if msg.startswith("KEYTURN_") else f"KEYTURN_{loc.upper()}: {msg}"
            for msg, loc in zip(messages, locations, strict=True)
        ]
        raise CommandError("; ".join(lines)) from None
    except SettingsError as exc:
        raise CommandError(str(exc)) from None


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[None]:
    """Connect, and insist on a migrated database."""
    config = tortoise_config(settings.database_url)
    db_file = sqlite_path(settings.database_url)
    if db_file is not None and not db_file.is_file():
        # Opening it would create an empty file (or fail in a folder that does not exist).
        raise CommandError(f"there is no database at {db_file}: run `keyturn migrate` first")
    try:
        await Tortoise.init(config=config)
        pending = await pending_migrations(settings.database_url)
    except Exception as exc:
        await Tortoise.close_connections()
        if is_unavailable(exc):
            raise CommandError(f"cannot reach the database: {_describe(exc)}") from None
        # Anything else here comes from what KEYTURN_DATABASE_URL points at (a file that is
        # no database, a schema of another program): the operator's to fix, not a crash.
        raise CommandError(f"cannot use the database: {_describe(exc)}") from None
    if pending is None:
        await Tortoise.close_connections()
        raise CommandError("the database is not migrated: run `keyturn migrate` first")
    if pending:
        await Tortoise.close_connections()
        raise CommandError(
            f"the database lacks migrations {', '.join(pending)}: run `keyturn migrate` first"
        )
    try:
        yield
    finally:
        await Tortoise.close_connections()


def _describe(exc: BaseException) -> str:
    root = exc
    while root.__cause__ is not None or (root.__context__ is not None and not str(root)):
        root = root.__cause__ or root.__context__  # type: ignore[assignment]
    # What the driver says of a stalled or cut network is about its own insides
    # ("CancelledError", "unexpected connection_lost() call"): said as what happened.
    if isinstance(root, TimeoutError | asyncio.CancelledError):
        return "no answer in time"
    if isinstance(root, asyncpg.ConnectionDoesNotExistError) or "connection_lost" in str(root):
        return "the connection was lost"
    return str(root) or type(root).__name__


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        # Read as bytes: the text layer would turn bytes that are not UTF-8 into surrogates
        # (or fail with a traceback, depending on the locale).
        try:
            password = sys.stdin.buffer.readline().decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise CommandError("the password on standard input is not UTF-8 text") from None
        if not password:
            raise CommandError("no password on standard input")
        return password
    if not sys.stdin.isatty():
        raise CommandError("no terminal to ask for a password: use --password-stdin")
    try:
        first = getpass.getpass("Password: ")
        again = getpass.getpass("Password (again): ")
    except EOFError:
        print(file=sys.stderr)  # the prompt's line
        raise CommandError("no password given") from None
    if again != first:
        raise CommandError("the passwords do not match")
    return first


async def cmd_migrate(settings: Settings, args: argparse.Namespace) -> None:
    try:
        applied = await migrate(settings.database_url)
    except DatabaseUnavailable as exc:
        raise CommandError(f"cannot reach the database: {str(exc) or _describe(exc)}") from None
    except MigrationError as exc:
        raise CommandError(f"{exc} (the database was left unchanged)") from None
    if applied:
        for name in applied:
            print(f"applied {name}")
    else:
        print("the database is up to date")


async def cmd_users_create(settings: Settings, args: argparse.Namespace) -> None:
    password: str = args.password
    passwords = Passwords(concurrency=1)
    role = Role.ADMIN if args.admin else Role.USER
    try:
        async with database(settings):
            user = await accounts.create_user(
                passwords, args.email, password, role, actor_id=None, via="cli"
            )
    finally:
        passwords.close()
    print(f"created {user.role.value} {user.email} ({user.id})")


async def cmd_users_list(settings: Settings, args: argparse.Namespace) -> None:
    # Page by page, in email order, printing as it goes: a million users took 26 s and 1.3 GB
    # before the first line, loaded at once.
    listed = 0
    async with database(settings):
        after: str | None = None
        while True:
            page = UserRow.all() if after is None else UserRow.filter(email__gt=after)
            users = await page.order_by("email").limit(LIST_PAGE)
            if not users:
                break
            if not listed:
                print(f"{'EMAIL':40} {'ROLE':6} {'ACTIVE':6} {'VERSION':7} ID")
            for user in users:
                active = "yes" if user.is_active else "no"
                print(
                    f"{user.email:40} {user.role.value:6} {active:6} "
                    f"{user.token_version:<7} {user.id}"
                )
            listed += len(users)
            after = users[-1].email
    if not listed:
        print("no users yet: create one with `keyturn users create EMAIL --admin`")


async def cmd_users_revoke(settings: Settings, args: argparse.Namespace) -> None:
    async with database(settings):
        user = await accounts.revoke_user_sessions_by_email(args.email)
    print(f"revoked every session of {user.email} (token version now {user.token_version})")
    if settings.redis_url and not await announce_user_revoked(settings.redis_url, user.id):
        print(
            "note: Redis cannot be reached; running instances refuse the sessions within "
            f"{settings.revocation_cache_ttl:g} s",
            file=sys.stderr,
        )


async def cmd_prune(settings: Settings, args: argparse.Namespace) -> None:
    async with database(settings):
        sessions, events = await maintenance.prune(settings)
    print(f"deleted {sessions} dead sessions and {events} old audit events")


async def cmd_admin_hint(settings: Settings) -> None:
    async with database(settings):
        has_admin = await UserRow.exists(role=Role.ADMIN, is_active=True)
    if not has_admin:
        # A log line like the server's, with its time: an operator reading the log later can
        # tell which start it belongs to.
        logger.warning(
            "No admin yet. Create the first one with: "
            ".venv/bin/keyturn users create admin@example.com --admin"
        )


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    import uvicorn

    asyncio.run(_run(cmd_admin_hint, settings))
    if args.workers > 1 and not settings.redis_url:
        logger.warning(
            "%d workers without KEYTURN_REDIS_URL: each counts the rate limits and the login "
            "lockout on its own, so a client gets up to %d times the attempts; set "
            "KEYTURN_REDIS_URL to share them (docs/deployment.md)",
            args.workers,
            args.workers,
        )
    uvicorn.run(
        "api.main:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=False,
        server_header=False,
        # uvicorn's access log prints query strings, where a GraphQL GET carries variables;
        # Keyturn writes its own access line (path only) as `keyturn.access`.
        access_log=False,
        log_config=server_log_config(),
        # On SIGTERM, requests in flight finish, for this long at most: a client that never
        # sends the rest of its body held the process up for as long as it stayed connected.
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
    )


def cmd_schema(settings: Settings | None, args: argparse.Namespace) -> None:
    from schema import sdl

    print(sdl())


async def _run(func: Callable[..., Awaitable[None]], *args: Any) -> None:
    await func(*args)


def _bounded(name: str, low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`, or a one-line refusal."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number from {low} to {high}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keyturn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_bounded("port", 0, 65535), default=8000)
    serve.add_argument("--workers", type=_bounded("workers", 1, 1024), default=1)

    commands.add_parser("migrate", help="apply migrations to KEYTURN_DATABASE_URL")
    commands.add_parser("prune", help="delete long-dead sessions and old audit events")
    commands.add_parser("schema", help="print the GraphQL SDL")

    users = commands.add_parser("users", help="manage users").add_subparsers(
        dest="users_command", required=True
    )
    create = users.add_parser("create", help="create a user")
    create.add_argument("email")
    create.add_argument("--admin", action="store_true", help="make the user an admin")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    users.add_parser("list", help="list users")
    revoke = users.add_parser("revoke-sessions", help="end every session of a user")
    revoke.add_argument("email")
    return parser


AsyncCommand = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, None]]
ASYNC_COMMANDS: dict[tuple[str, str | None], AsyncCommand] = {
    ("migrate", None): cmd_migrate,
    ("prune", None): cmd_prune,
    ("users", "create"): cmd_users_create,
    ("users", "list"): cmd_users_list,
    ("users", "revoke-sessions"): cmd_users_revoke,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format=LINE_FORMAT)
    try:
        if args.command == "schema":
            cmd_schema(None, args)
            return 0
        settings = _settings()
        if args.command == "serve":
            cmd_serve(settings, args)
            return 0
        handler = ASYNC_COMMANDS[(args.command, getattr(args, "users_command", None))]
        if handler is cmd_users_create:
            # Asked before the event loop starts: inside it, the terminal's prompt swallowed
            # the first Ctrl-C, and Ctrl-D ended in a traceback.
            args.password = _read_password(args.password_stdin)
        asyncio.run(handler(settings, args))
    except CommandError as exc:
        print(f"keyturn: {exc}", file=sys.stderr)
        return 1
    except AuthError as exc:
        field = exc.extensions.get("field")
        print(f"keyturn: {field + ': ' if field else ''}{exc.message}", file=sys.stderr)
        return 1
    except SettingsError as exc:
        print(f"keyturn: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`keyturn users list | head`): nothing more to say to it.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
