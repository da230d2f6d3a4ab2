"""The `keyturn` command, run for real in a subprocess against real SQLite files and PostgreSQL.

Every failure an operator can cause ends in one line on stderr and a non-zero exit, never a
traceback.
"""

from __future__ import annotations

import asyncio
import os
import pty
import re
import select
import signal
import socket
import sqlite3
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from redis.asyncio import Redis
from tortoise import Tortoise

from api import revocation
from api.cli import EXIT_USAGE, LIST_PAGE
from api.db import tortoise_config
from api.migrations import migration_files
from models import AuditEvent, AuditKind, Role, Session, User
from tests.conftest import (
    ACCESS_SECRET,
    PASSWORD,
    PG_HOST,
    PG_PORT,
    REDIS_HOST,
    REDIS_PORT,
    REFRESH_SECRET,
    pg_admin,
    pg_url,
    port_open,
    require_service,
)
from tests.tcpproxy import TcpProxy

KEYTURN = Path(sys.executable).with_name("keyturn")
TIMEOUT = 60


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def error_line(self) -> str:
        """The one line a failure prints; fails the test if there is more, or a traceback."""
        assert self.returncode != 0, self.stdout
        assert "Traceback" not in self.stderr, self.stderr
        lines = self.stderr.splitlines()
        assert len(lines) == 1, self.stderr
        assert lines[0].startswith("keyturn: "), self.stderr
        return lines[0]


@dataclass
class Keyturn:
    """The `keyturn` command in its own working folder, with its own environment."""

    cwd: Path
    database_url: str

    def environment(self, env: dict[str, str] | None = None) -> dict[str, str]:
        """This process's environment without its KEYTURN_* settings, then this database and
        the tests' secrets, then `env` (an empty value unsets the variable)."""
        environment = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
        environment |= {
            "KEYTURN_DATABASE_URL": self.database_url,
            "KEYTURN_ACCESS_TOKEN_SECRET": ACCESS_SECRET,
            "KEYTURN_REFRESH_TOKEN_SECRET": REFRESH_SECRET,
            **(env or {}),
        }
        return {k: v for k, v in environment.items() if v}

    async def __call__(
        self, *args: str, stdin: str | bytes | None = None, env: dict[str, str] | None = None
    ) -> Run:
        process = await asyncio.create_subprocess_exec(
            str(KEYTURN),
            *args,
            cwd=self.cwd,
            env=self.environment(env),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(
                process.communicate(stdin.encode() if isinstance(stdin, str) else stdin), TIMEOUT
            )
        except TimeoutError:
            process.kill()
            await process.wait()
            pytest.fail(f"keyturn {' '.join(args)} did not finish in {TIMEOUT} s")
        assert process.returncode is not None
        return Run(process.returncode, out.decode(), err.decode())

    async def create_user(self, email: str, *flags: str, password: str = PASSWORD) -> Run:
        return await self("users", "create", email, *flags, "--password-stdin", stdin=password)


@pytest.fixture
async def scratch_pg() -> AsyncIterator[str]:
    """An empty database of its own on the real PostgreSQL, dropped afterwards."""
    require_service("PostgreSQL", port_open(PG_HOST, PG_PORT))
    name = f"keyturn_test_{uuid.uuid4().hex[:10]}"
    await pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield pg_url(name)
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'keyturn.sqlite3'}"
    return str(request.getfixturevalue("scratch_pg"))


@pytest.fixture
def keyturn(tmp_path: Path, empty_database_url: str) -> Keyturn:
    return Keyturn(tmp_path, empty_database_url)


@pytest.fixture
async def migrated(keyturn: Keyturn) -> Keyturn:
    result = await keyturn("migrate")
    assert result.returncode == 0, result.stderr
    return keyturn


@asynccontextmanager
async def orm(database_url: str) -> AsyncIterator[None]:
    """The models, in this process, on the database the command used."""
    await Tortoise.init(config=tortoise_config(database_url))
    try:
        yield
    finally:
        await Tortoise.close_connections()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# The everyday path.


async def test_migrate_then_create_an_admin_then_list_it(keyturn: Keyturn) -> None:
    migrate = await keyturn("migrate")
    assert migrate.returncode == 0, migrate.stderr
    assert migrate.stdout.startswith("applied 0_")

    created = await keyturn.create_user("  A@Example.com ", "--admin")
    assert created.returncode == 0, created.stderr
    assert "admin a@example.com" in created.stdout

    listed = await keyturn("users", "list")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == ["EMAIL", "ROLE", "ACTIVE", "VERSION", "ID"]
    email, role, active, version, user_id = row.split()
    assert (email, role, active, version) == ("a@example.com", "admin", "yes", "0")
    async with orm(keyturn.database_url):
        user = await User.get(id=uuid.UUID(user_id))
        assert user.role is Role.ADMIN
        assert user.password_hash.startswith("$argon2id$")
        assert await AuditEvent.exists(user_id=user.id, kind=AuditKind.USER_CREATED.value)


async def test_a_second_migrate_says_the_database_is_up_to_date(migrated: Keyturn) -> None:
    again = await migrated("migrate")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "the database is up to date"


async def test_users_list_on_an_empty_database_says_how_to_create_one(migrated: Keyturn) -> None:
    listed = await migrated("users", "list")
    assert listed.returncode == 0, listed.stderr
    assert "keyturn users create" in listed.stdout


async def test_users_list_pages_through_every_user_in_email_order(migrated: Keyturn) -> None:
    # Read a page at a time (it loaded every row before printing one): the pages must join
    # without a user twice or missing.
    now = datetime.now(UTC)
    emails = [f"u{i:05d}@example.com" for i in range(LIST_PAGE * 2 + 3)]
    async with orm(migrated.database_url):
        await User.bulk_create(
            [
                User(email=email, password_hash="$argon2id$unused", created_at=now, updated_at=now)
                for email in reversed(emails)
            ]
        )
    listed = await migrated("users", "list")
    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.splitlines()
    assert rows[0].split()[0] == "EMAIL"
    assert [row.split()[0] for row in rows[1:]] == emails


async def test_users_create_without_admin_makes_a_plain_user(migrated: Keyturn) -> None:
    created = await migrated.create_user("b@example.com")
    assert created.returncode == 0, created.stderr
    listed = await migrated("users", "list")
    assert listed.stdout.splitlines()[1].split()[1] == "user"


async def test_revoke_sessions_bumps_the_token_version_and_is_audited(migrated: Keyturn) -> None:
    await migrated.create_user("a@example.com", "--admin")

    revoked = await migrated("users", "revoke-sessions", "A@example.com")
    assert revoked.returncode == 0, revoked.stderr
    assert "a@example.com" in revoked.stdout

    listed = await migrated("users", "list")
    assert listed.stdout.splitlines()[1].split()[3] == "1"
    async with orm(migrated.database_url):
        user = await User.get(email="a@example.com")
        assert user.token_version == 1
        event = await AuditEvent.get(user_id=user.id, kind=AuditKind.USER_SESSIONS_REVOKED.value)
        assert event.actor_id is None


async def test_revoke_sessions_tells_the_running_instances_through_redis(
    migrated: Keyturn,
) -> None:
    require_service("Redis", port_open(REDIS_HOST, REDIS_PORT))
    await migrated.create_user("r@example.com")
    redis = Redis.from_url(f"redis://{REDIS_HOST}:{REDIS_PORT}/0")
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(revocation.CHANNEL)
        revoked = await migrated(
            "users",
            "revoke-sessions",
            "r@example.com",
            env={"KEYTURN_REDIS_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/0"},
        )
        assert revoked.returncode == 0, revoked.stderr
        message = None
        async with asyncio.timeout(5):
            while message is None:  # the subscription's own confirmation reads as None
                message = await pubsub.get_message(timeout=1)
    finally:
        await pubsub.aclose()
        await redis.aclose()
    async with orm(migrated.database_url):
        user = await User.get(email="r@example.com")
    assert message is not None
    kind, _, subject = message["data"].decode().split()
    assert (kind, subject) == ("u", str(user.id))  # every instance drops this user's sessions


async def test_revoke_sessions_without_redis_still_revokes_and_says_so(migrated: Keyturn) -> None:
    await migrated.create_user("n@example.com")
    revoked = await migrated(
        "users",
        "revoke-sessions",
        "n@example.com",
        env={"KEYTURN_REDIS_URL": "redis://127.0.0.1:1/0"},
    )
    assert revoked.returncode == 0, revoked.stderr
    assert "Redis cannot be reached" in revoked.stderr
    async with orm(migrated.database_url):
        assert (await User.get(email="n@example.com")).token_version == 1


async def test_revoke_sessions_of_an_unknown_email_fails_in_one_line(migrated: Keyturn) -> None:
    result = await migrated("users", "revoke-sessions", "nobody@example.com")
    assert "nobody@example.com" in result.error_line


async def test_prune_deletes_long_dead_sessions_and_old_audit_events(migrated: Keyturn) -> None:
    now = datetime.now(UTC)
    long_ago = now - timedelta(days=400)
    async with orm(migrated.database_url):
        user = await User.create(
            email="p@example.com",
            password_hash="$argon2id$x",
            role=Role.USER,
            is_active=True,
            token_version=0,
            created_at=long_ago,
            updated_at=long_ago,
        )

        def session(expires_at: datetime) -> Session:
            return Session(
                user=user,
                token_version=0,
                current_token_id=uuid.uuid4(),
                rotated_at=long_ago,
                created_at=long_ago,
                last_used_at=long_ago,
                expires_at=expires_at,
                absolute_expires_at=now + timedelta(days=20),
            )

        dead, live = session(now - timedelta(days=8)), session(now + timedelta(days=1))
        await dead.save()
        await live.save()
        old = await AuditEvent.create(kind="login_succeeded", created_at=long_ago, user=user)
        recent = await AuditEvent.create(kind="login_succeeded", created_at=now, user=user)

    pruned = await migrated("prune")

    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.strip() == "deleted 1 dead sessions and 1 old audit events"
    async with orm(migrated.database_url):
        assert {s.id for s in await Session.all()} == {live.id}
        assert {e.id for e in await AuditEvent.all()} == {recent.id}
        assert not await AuditEvent.exists(id=old.id)


async def test_schema_prints_the_graphql_sdl_without_a_database(tmp_path: Path) -> None:
    keyturn = Keyturn(tmp_path, "mysql://not-needed")
    result = await keyturn("schema")
    assert result.returncode == 0, result.stderr
    assert "type Query" in result.stdout
    assert "type Mutation" in result.stdout
    assert result.stderr == ""


# Operator mistakes: one clear line, a non-zero exit, no traceback.


async def test_a_duplicate_email_is_refused(migrated: Keyturn) -> None:
    assert (await migrated.create_user("a@example.com")).returncode == 0
    line = (await migrated.create_user("A@EXAMPLE.COM ")).error_line
    assert "email" in line
    assert "already registered" in line


async def test_an_invalid_email_is_refused(migrated: Keyturn) -> None:
    line = (await migrated.create_user("not-an-email")).error_line
    assert "email" in line


async def test_a_too_short_password_is_refused(migrated: Keyturn) -> None:
    line = (await migrated.create_user("a@example.com", password="short")).error_line
    assert "password" in line
    assert "8" in line
    listed = await migrated("users", "list")
    assert "a@example.com" not in listed.stdout


async def test_input_that_is_not_utf8_is_refused(migrated: Keyturn) -> None:
    # Python makes surrogates of such bytes (in arguments; on stdin under a C locale), which
    # argon2 and the database cannot encode: before, a traceback.
    run = partial(migrated, "users", "create", "a@example.com", "--password-stdin")
    for env in ({"LC_ALL": "C.UTF-8"}, {"LC_ALL": "C", "PYTHONUTF8": "0"}):
        line = (await run(stdin=b"a long \xff password\n", env=env)).error_line
        assert "password" in line
        assert "UTF-8" in line
    email = os.fsdecode(b"\xff@example.com")
    assert "email" in (await migrated.create_user(email)).error_line
    assert "a@example.com" not in (await migrated("users", "list")).stdout


def in_terminal(keyturn: Keyturn, args: list[str], keys: bytes) -> tuple[int, str]:
    """Runs the command on a terminal of its own (a pseudo-terminal, its controlling one),
    types `keys` at its first password prompt, and returns its exit code and what it showed."""
    env = keyturn.environment()
    pid, terminal = pty.fork()
    if pid == 0:  # the child: nothing but exec
        os.chdir(keyturn.cwd)
        os.execve(KEYTURN, [str(KEYTURN), *args], env)  # noqa: S606 (our own command)
    shown, typed = b"", False
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            if not typed and b"Password: " in shown:
                os.write(terminal, keys)
                typed = True
            ready, _, _ = select.select([terminal], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(terminal, 4096)
                except OSError:  # the terminal closed with the command's end
                    break
                if not chunk:
                    break
                shown += chunk
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(terminal)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


@pytest.mark.parametrize(("key", "code", "says"), [(b"\x03", 130, ""), (b"\x04", 1, "no password")])
async def test_ctrl_c_or_ctrl_d_at_the_password_prompt_ends_the_command(
    migrated: Keyturn, key: bytes, code: int, says: str
) -> None:
    # Before, the prompt ran inside the event loop: the first Ctrl-C was swallowed (the
    # command ended only after the next Enter), and Ctrl-D ended in a traceback.
    returncode, shown = await asyncio.to_thread(
        in_terminal, migrated, ["users", "create", "a@example.com"], key
    )
    assert returncode == code, shown
    assert "Traceback" not in shown
    assert says in shown
    assert "a@example.com" not in (await migrated("users", "list")).stdout


async def test_a_password_must_come_from_stdin_or_a_terminal(migrated: Keyturn) -> None:
    empty, no_terminal = await asyncio.gather(
        migrated.create_user("a@example.com", password=""),
        migrated("users", "create", "a@example.com", stdin=""),
    )
    assert "password" in empty.error_line
    assert "--password-stdin" in no_terminal.error_line


DATABASE_COMMANDS = [("migrate",), ("users", "list"), ("prune",)]


async def error_lines(keyturn: Keyturn, commands: list[tuple[str, ...]]) -> list[str]:
    """Run several commands at once; each must fail with one line."""
    runs = await asyncio.gather(*(keyturn(*command) for command in commands))
    return [run.error_line for run in runs]


@pytest.mark.parametrize(
    "url",
    ["mysql://x", "keyturn.sqlite3", "postgres://127.0.0.1:5432", "postgres://h:port/db"],
)
async def test_a_bad_database_url_is_named(tmp_path: Path, url: str) -> None:
    for line in await error_lines(Keyturn(tmp_path, url), DATABASE_COMMANDS):
        assert "KEYTURN_DATABASE_URL" in line


async def test_an_unknown_postgres_url_parameter_is_named(tmp_path: Path) -> None:
    url = f"{pg_url('postgres')}?sslmod=disable"
    line = (await Keyturn(tmp_path, url)("users", "list")).error_line
    assert "KEYTURN_DATABASE_URL" in line
    assert "sslmod" in line


async def test_an_unreachable_database_is_reported(tmp_path: Path) -> None:
    url = pg_url("keyturn", port=closed_port())
    for line in await error_lines(Keyturn(tmp_path, url), DATABASE_COMMANDS):
        assert "cannot reach the database" in line


async def test_a_stalled_database_is_reported_as_such(tmp_path: Path) -> None:
    # A network that swallows packets: the driver's own words were "CancelledError".
    require_service("PostgreSQL", port_open(PG_HOST, PG_PORT))
    proxy = TcpProxy(PG_HOST, PG_PORT)
    await proxy.start()
    await proxy.freeze()
    try:
        url = pg_url("postgres", port=proxy.port) + "?timeout=1"
        for line in await error_lines(Keyturn(tmp_path, url), DATABASE_COMMANDS):
            assert "cannot reach the database: no answer in time" in line, line
    finally:
        await proxy.stop()


async def test_a_postgres_database_that_does_not_exist_is_reported(tmp_path: Path) -> None:
    require_service("PostgreSQL", port_open(PG_HOST, PG_PORT))
    url = pg_url(f"keyturn_missing_{uuid.uuid4().hex[:8]}")
    line = (await Keyturn(tmp_path, url)("users", "list")).error_line
    assert "cannot reach the database" in line


async def test_a_missing_sqlite_folder_is_reported(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'no' / 'such' / 'folder' / 'k.sqlite3'}"
    for command in (("migrate",), ("users", "list")):
        line = (await Keyturn(tmp_path, url)(*command)).error_line
        assert "folder" in line or "no database" in line
    assert not (tmp_path / "no").exists()


async def test_a_file_that_is_no_database_is_reported_and_left_alone(tmp_path: Path) -> None:
    db_file = tmp_path / "keyturn.sqlite3"
    db_file.write_bytes(b"not a database at all" * 100)
    keyturn = Keyturn(tmp_path, f"sqlite://{db_file}")
    for command in (("migrate",), ("users", "list")):
        assert "not a database" in (await keyturn(*command)).error_line
    assert db_file.read_bytes() == b"not a database at all" * 100


async def test_two_migrations_at_once_on_postgres_apply_each_migration_once(
    tmp_path: Path, scratch_pg: str
) -> None:
    # Before, both applied the same migrations and the second failed on a duplicate key.
    keyturn = Keyturn(tmp_path, scratch_pg)
    first, second = await asyncio.gather(keyturn("migrate"), keyturn("migrate"))
    assert (first.returncode, second.returncode) == (0, 0), (first.stderr, second.stderr)
    outputs = sorted([first.stdout, second.stdout], key=len)
    assert outputs[0].strip() == "the database is up to date"
    assert outputs[1].count("applied ") == len(migration_files("postgres"))


async def test_migrate_refuses_an_sqlite_file_a_keyturn_process_has_open(tmp_path: Path) -> None:
    db_file = tmp_path / "keyturn.sqlite3"
    keyturn = Keyturn(tmp_path, f"sqlite://{db_file}")
    assert (await keyturn("migrate")).returncode == 0
    with closing(sqlite3.connect(db_file)) as db, db:  # a database one migration behind
        db.execute("DELETE FROM aerich WHERE id = (SELECT max(id) FROM aerich)")
    await Tortoise.init(config=tortoise_config(keyturn.database_url))
    try:
        await User.all().count()  # open here, as a served database is
        line = (await keyturn("migrate")).error_line
    finally:
        await Tortoise.close_connections()
    assert "in use by a running Keyturn" in line
    assert "stop it" in line


async def test_an_unmigrated_database_is_reported(keyturn: Keyturn) -> None:
    commands = [("users", "list"), ("users", "revoke-sessions", "a@example.com"), ("prune",)]
    lines = await error_lines(keyturn, commands)
    lines.append((await keyturn.create_user("a@example.com")).error_line)
    for line in lines:
        assert "keyturn migrate" in line


async def test_an_unmigrated_sqlite_database_is_not_created_by_reading_it(tmp_path: Path) -> None:
    db_file = tmp_path / "keyturn.sqlite3"
    (await Keyturn(tmp_path, f"sqlite://{db_file}")("users", "list")).error_line  # noqa: B018
    assert not db_file.exists()


async def test_production_serve_without_secrets_names_the_access_secret(tmp_path: Path) -> None:
    keyturn = Keyturn(tmp_path, f"sqlite://{tmp_path / 'k.sqlite3'}")
    result = await keyturn(
        "serve",
        "--port",
        str(closed_port()),
        env={
            "KEYTURN_ENV": "production",
            "KEYTURN_ACCESS_TOKEN_SECRET": "",
            "KEYTURN_REFRESH_TOKEN_SECRET": "",
        },
    )
    assert "KEYTURN_ACCESS_TOKEN_SECRET" in result.error_line
    assert not (tmp_path / ".keyturn-secrets").exists()


async def test_production_serve_with_a_short_secret_names_it(tmp_path: Path) -> None:
    keyturn = Keyturn(tmp_path, f"sqlite://{tmp_path / 'k.sqlite3'}")
    result = await keyturn(
        "serve",
        "--port",
        str(closed_port()),
        env={"KEYTURN_ENV": "production", "KEYTURN_REFRESH_TOKEN_SECRET": "tooShort123"},
    )
    assert "KEYTURN_REFRESH_TOKEN_SECRET" in result.error_line


async def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    keyturn = Keyturn(tmp_path, f"sqlite://{tmp_path / 'k.sqlite3'}")
    result = await keyturn("serve", "--port", str(closed_port()))
    assert "keyturn migrate" in result.error_line


@pytest.mark.parametrize(
    ("flag", "value"), [("--port", "99999"), ("--port", "http"), ("--workers", "0")]
)
async def test_serve_refuses_a_port_or_worker_count_out_of_range(
    tmp_path: Path, flag: str, value: str
) -> None:
    # Before, uvicorn listened on a port of its own choosing for 99999 (and logged 99999).
    result = await Keyturn(tmp_path, f"sqlite://{tmp_path / 'k.sqlite3'}")("serve", flag, value)
    assert result.returncode == EXIT_USAGE
    assert "Traceback" not in result.stderr
    assert f"{flag[2:]} must be a whole number from" in result.stderr.splitlines()[-1]


async def test_serve_with_workers_and_no_redis_says_the_limits_are_per_worker(
    tmp_path: Path,
) -> None:
    keyturn = Keyturn(tmp_path, f"sqlite://{tmp_path / 'k.sqlite3'}")
    assert (await keyturn("migrate")).returncode == 0
    process = await asyncio.create_subprocess_exec(
        str(KEYTURN),
        *("serve", "--workers", "2", "--port", str(closed_port())),
        cwd=tmp_path,
        env=keyturn.environment(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        seen = []
        async with asyncio.timeout(TIMEOUT):
            while not any("KEYTURN_REDIS_URL" in line for line in seen):
                line = (await process.stderr.readline()).decode()
                assert line, "".join(seen)
                seen.append(line)
    finally:
        process.terminate()
        await process.wait()
    warning = next(line for line in seen if "KEYTURN_REDIS_URL" in line)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING keyturn: ", warning), warning
    assert "2 workers" in warning
    assert "login lockout" in warning


async def test_a_dot_env_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    keyturn = Keyturn(tmp_path, f"sqlite://{tmp_path / 'k.sqlite3'}")
    dot_env = tmp_path / ".env"
    # A link to a secret that is not mounted: before, read as absent, which meant development
    # mode on a new, empty database.
    dot_env.symlink_to(tmp_path / "secrets" / "keyturn.env")
    line = (await keyturn("migrate")).error_line
    assert ".env links to" in line
    assert "does not exist" in line
    assert not (tmp_path / "k.sqlite3").exists()
    dot_env.unlink()
    dot_env.write_bytes(b"KEYTURN_JWT_ISSUER=caf\xe9\n")  # Latin-1, not UTF-8: a traceback
    assert "cannot read .env" in (await keyturn("users", "list")).error_line


async def test_a_listing_cut_short_by_its_reader_ends_quietly(migrated: Keyturn) -> None:
    assert (await migrated.create_user("u@example.com")).returncode == 0
    # `true` reads nothing and is gone long before the listing is written.
    reader = await asyncio.create_subprocess_shell(
        f"{KEYTURN} users list | true",
        cwd=migrated.cwd,
        env=migrated.environment(),
        stderr=asyncio.subprocess.PIPE,
        executable="/bin/bash",
    )
    _, err = await asyncio.wait_for(reader.communicate(), TIMEOUT)
    assert b"Traceback" not in err, err.decode()


async def test_an_invalid_setting_is_named(tmp_path: Path) -> None:
    keyturn = Keyturn(tmp_path, f"sqlite://{tmp_path / 'k.sqlite3'}")
    result = await keyturn("users", "list", env={"KEYTURN_ACCESS_TOKEN_TTL": "soon"})
    assert "KEYTURN_ACCESS_TOKEN_TTL" in result.error_line
