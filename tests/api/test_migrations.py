"""Migrations, on both dialects: an empty database upgrades, the models have no unmigrated change,
and a failing migration is named and leaves the database exactly as it was."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import shutil
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aerich.utils import compress_dict, decompress_dict
from tortoise import Tortoise
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

import api.migrations
from api.db import Dialect, tortoise_config
from api.migrations import MigrationError, migrate, migration_files, models_in_sync
from api.sqlite import exclusive_use
from models import AuditEvent, Role, User
from models import Session as SessionRow
from models.audit import AuditKind, event_values
from models.sessions import ROTATE_AND_RECORD, ROTATED_COLUMNS, Rotation
from models.users import SEARCHED_PAGE, count_users, searched_values
from tests.conftest import (
    PG_HOST,
    PG_PORT,
    TABLES,
    pg_admin,
    pg_url,
    port_open,
    require_service,
)

BROKEN = '''\
from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        CREATE TABLE "half_done" ("id" INT NOT NULL PRIMARY KEY);
        INSERT INTO "no_such_table" ("id") VALUES (1);"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return ""
'''
BROKEN_NAME = "1_20990101000000_broken.py"
GOOD = BROKEN.replace('INSERT INTO "no_such_table" ("id") VALUES (1);', "").replace(
    "half_done", "good_one"
)


@asynccontextmanager
async def orm(database_url: str) -> AsyncIterator[None]:
    """tortoise's models on `database_url` for the block (the tests here migrate first)."""
    await Tortoise.init(config=tortoise_config(database_url))
    try:
        yield
    finally:
        await Tortoise.close_connections()


@asynccontextmanager
async def pg_database_of_its_own(options: str = "") -> AsyncIterator[str]:
    """A database of its own on the real PostgreSQL (CREATE DATABASE `options`), dropped
    afterwards."""
    require_service("PostgreSQL", port_open(PG_HOST, PG_PORT))
    name = f"keyturn_test_{uuid.uuid4().hex[:10]}"
    await pg_admin(f'CREATE DATABASE "{name}" {options}')
    try:
        yield name
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def scratch_pg() -> AsyncIterator[str]:
    async with pg_database_of_its_own() as name:
        yield name


@pytest.fixture(params=["sqlite", "postgres"])
def dialect(request: pytest.FixtureRequest) -> Dialect:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def empty_database(dialect: Dialect, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The URL of a database that was never migrated, of the dialect under test."""
    if dialect == "sqlite":
        return f"sqlite://{tmp_path / 'empty.sqlite3'}"
    return pg_url(request.getfixturevalue("scratch_pg"))


# What a database holds, read with the drivers themselves rather than through the ORM.


async def tables_and_versions(url: str) -> tuple[set[str], list[str]]:
    """The tables of a database and the migrations its aerich table records, in order."""
    if url.startswith("sqlite://"):
        with closing(sqlite3.connect(url.removeprefix("sqlite://"))) as conn:
            tables = {
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                if not row[0].startswith("sqlite_")
            }
            versions = (
                [row[0] for row in conn.execute("SELECT version FROM aerich ORDER BY id")]
                if "aerich" in tables
                else []
            )
        return tables, versions
    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        tables = {row["table_name"] for row in rows}
        versions = (
            [row["version"] for row in await conn.fetch("SELECT version FROM aerich ORDER BY id")]
            if "aerich" in tables
            else []
        )
    finally:
        await conn.close()
    return tables, versions


async def pg_schema(url: str) -> list[tuple[str, ...]]:
    """Every column and index of the public schema, to compare a database before and after."""
    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        columns = await conn.fetch(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = 'public' ORDER BY 1, 2"
        )
        indexes = await conn.fetch(
            "SELECT tablename, indexname, indexdef FROM pg_indexes"
            " WHERE schemaname = 'public' ORDER BY 1, 2"
        )
    finally:
        await conn.close()
    return [tuple(row.values()) for row in [*columns, *indexes]]


def working_copies(folder: Path) -> list[Path]:
    """What an SQLite upgrade left of its working copy beside the database file."""
    return list(folder.glob("keyturn-migrate-*"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def migrations_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repository's migrations that a test may change; the code reads it instead."""
    root = tmp_path / "migrations"
    shutil.copytree(api.migrations.MIGRATIONS_ROOT, root)
    monkeypatch.setattr(api.migrations, "MIGRATIONS_ROOT", root)
    return root


# Upgrading.


async def test_upgrading_an_empty_database_creates_every_table(
    dialect: Dialect, empty_database: str
) -> None:
    applied = await migrate(empty_database)

    assert applied == migration_files(dialect)
    assert applied, "each dialect has at least its initial migration"
    tables, versions = await tables_and_versions(empty_database)
    assert {*TABLES, "aerich"} <= tables
    assert versions == applied


async def test_a_second_upgrade_applies_nothing_and_changes_nothing(
    dialect: Dialect, empty_database: str
) -> None:
    await migrate(empty_database)
    before = await tables_and_versions(empty_database)

    assert await migrate(empty_database) == []
    assert await tables_and_versions(empty_database) == before


async def test_a_database_migrated_by_a_newer_version_is_said_to_be(
    dialect: Dialect,
    empty_database: str,
    migrations_copy: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As an older `keyturn migrate` sees a database that a newer one migrated: before, it said
    # "up to date" and nothing else.
    (migrations_copy / dialect / "models" / BROKEN_NAME).write_text(GOOD)
    await migrate(empty_database)
    (migrations_copy / dialect / "models" / BROKEN_NAME).unlink()
    caplog.set_level(logging.WARNING, "keyturn.migrations")

    assert await migrate(empty_database) == []

    warnings = [r.getMessage() for r in caplog.records if r.name == "keyturn.migrations"]
    assert len(warnings) == 1
    assert BROKEN_NAME in warnings[0]
    assert "newer version" in warnings[0]


async def test_the_upgraded_database_serves_the_models(
    dialect: Dialect, empty_database: str
) -> None:
    """The tables the migrations create are the ones the models read and write."""
    await migrate(empty_database)
    async with orm(empty_database):
        now = datetime.now(UTC)
        user = await User.create(
            email="m@example.com",
            password_hash="x",
            role=Role.ADMIN,
            is_active=True,
            token_version=0,
            created_at=now,
            updated_at=now,
        )
        await AuditEvent.create(kind="user_created", created_at=now, user=user, detail={"a": 1})
        assert (await User.get(id=user.id)).role is Role.ADMIN
        assert (await AuditEvent.get(user_id=user.id)).detail == {"a": 1}


async def test_postgres_gets_a_suffix_index_for_the_users_search(scratch_pg: str) -> None:
    """PostgreSQL only: SQLite's is a table (users_email_suffixes)."""
    url = pg_url(scratch_pg)
    await migrate(url)

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        rows = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'users'"
        )
    finally:
        await conn.close()
    indexes = {row["indexname"]: row["indexdef"] for row in rows}

    suffixes = indexes["idx_users_email_suffixes"]
    assert "USING gin (keyturn_email_suffixes((email)::text))" in suffixes
    assert "users_email_key" in indexes  # the unique B-tree that the keyset pages walk


# The sessions table: what a rotation writes has no index.

UNINDEXED = "rotation_writes_unindexed"
USERS_COUNT = "users_count"


def hold_back(migrations_copy: Path, dialect: Dialect, suffix: str) -> tuple[str, Any]:
    """Take the migration named `suffix` and every later one out of the history, so a database
    can be migrated to just before it; returns its name and what puts them all back."""
    folder = migrations_copy / dialect / "models"
    names = migration_files(dialect)
    [newer] = [name for name in names if name.endswith(f"_{suffix}.py")]
    later = names[names.index(newer) :]
    for name in later:
        (folder / name).rename(folder.parent / name)

    def restore() -> None:
        for name in later:
            (folder.parent / name).rename(folder / name)

    return newer, restore


async def session_indexes(url: str) -> dict[str, list[str]]:
    """Each index of `sessions` and its columns, read from the database's own catalogue."""
    if url.startswith("sqlite://"):
        with closing(sqlite3.connect(url.removeprefix("sqlite://"))) as conn:
            names = [row[1] for row in conn.execute("PRAGMA index_list('sessions')")]
            return {
                name: [row[2] for row in conn.execute(f"PRAGMA index_info('{name}')")]
                for name in names
            }
    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        rows = await conn.fetch(
            "SELECT c.relname AS index, a.attname AS column FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
            " WHERE i.indrelid = 'sessions'::regclass"
            " ORDER BY c.relname, array_position(i.indkey::int2[], a.attnum)"
        )
    finally:
        await conn.close()
    indexes: dict[str, list[str]] = {}
    for row in rows:
        indexes.setdefault(row["index"], []).append(row["column"])
    return indexes


async def test_no_index_covers_a_column_that_a_rotation_writes(
    dialect: Dialect, empty_database: str
) -> None:
    await migrate(empty_database)

    indexes = await session_indexes(empty_database)

    indexed = {column for columns in indexes.values() for column in columns}
    assert {"id", "user_id", "created_at"} <= indexed  # the catalogue was read
    assert indexed.isdisjoint(ROTATED_COLUMNS), indexes


async def test_a_rotation_on_postgres_is_a_heap_only_update(scratch_pg: str) -> None:
    """No index entry is written: PostgreSQL's own count of this transaction's updates says so.
    With an index on any rotated column, none of them would be heap-only."""
    url = pg_url(scratch_pg)
    await migrate(url)
    async with orm(url):
        now = datetime.now(UTC)
        user = await User.create(
            email="hot@example.com", password_hash="x", created_at=now, updated_at=now
        )
        token_id = uuid.uuid4()
        session = await SessionRow.create(
            user=user,
            token_version=0,
            current_token_id=token_id,
            rotated_at=now,
            created_at=now,
            last_used_at=now,
            expires_at=now + timedelta(days=7),
            absolute_expires_at=now + timedelta(days=30),
        )
        async with in_transaction() as conn:
            for _ in range(5):
                rotation = Rotation(
                    session_id=session.id,
                    user_id=user.id,
                    presented_token_id=token_id,
                    token_version=0,
                    new_token_id=uuid.uuid4(),
                    issued_at=now,
                    expires_at=now + timedelta(days=7),
                    now=now,
                )
                event = event_values(
                    AuditKind.REFRESHED, now, user_id=user.id, session_id=session.id
                )
                sql = ROTATE_AND_RECORD.sql(conn)
                assert len(await conn.execute_query_dict(sql, rotation.values() + event)) == 1
                token_id = rotation.new_token_id
            [counts] = await conn.execute_query_dict(
                "SELECT pg_stat_get_xact_tuples_updated('sessions'::regclass) AS updated,"
                " pg_stat_get_xact_tuples_hot_updated('sessions'::regclass) AS hot,"
                " (SELECT reloptions FROM pg_class WHERE relname = 'sessions') AS options"
            )

    assert counts["updated"] == 5
    assert counts["hot"] == 5
    assert "fillfactor=80" in counts["options"]


async def test_upgrading_sessions_keeps_every_row_and_the_reference_to_users(
    dialect: Dialect, empty_database: str, migrations_copy: Path
) -> None:
    """SQLite rebuilds the table to drop the UNIQUE: a database from before keeps its rows, its
    index on user_id, and its cascade from users."""
    newer, restore = hold_back(migrations_copy, dialect, UNINDEXED)
    await migrate(empty_database)
    async with orm(empty_database):
        now = datetime.now(UTC)
        users = [
            await User.create(
                email=f"u{i}@example.com", password_hash="x", created_at=now, updated_at=now
            )
            for i in range(2)
        ]
        for i in range(6):
            await SessionRow.create(
                user=users[i % 2],
                token_version=0,
                current_token_id=uuid.uuid4(),
                previous_token_id=uuid.uuid4() if i % 3 else None,
                rotated_at=now,
                created_at=now + timedelta(seconds=i),
                last_used_at=now,
                expires_at=now + timedelta(days=7),
                absolute_expires_at=now + timedelta(days=30),
                ip_address=f"10.0.0.{i}",
                user_agent="agent",
                revoked_at=now if i == 5 else None,
                revoked_reason="logout" if i == 5 else None,
            )
        before = await SessionRow.all().order_by("id").values()
    restore()

    assert (await migrate(empty_database))[0] == newer

    async with orm(empty_database):
        assert await SessionRow.all().order_by("id").values() == before
        await User.filter(id=users[0].id).delete()
        assert await SessionRow.filter(user_id=users[0].id).count() == 0
        assert await SessionRow.all().count() == 3
        if dialect == "sqlite":
            conn = Tortoise.get_connection("sqlite")
            assert await conn.execute_query_dict("PRAGMA foreign_key_check") == []
    indexes = await session_indexes(empty_database)
    assert ["user_id", "created_at", "id"] in indexes.values()


async def test_upgrading_counts_the_users_already_there(
    dialect: Dialect, empty_database: str, migrations_copy: Path
) -> None:
    newer, restore = hold_back(migrations_copy, dialect, USERS_COUNT)
    await migrate(empty_database)
    async with orm(empty_database):
        now = datetime.now(UTC)
        for i in range(3):
            await User.create(
                email=f"early{i}@example.com", password_hash="x", created_at=now, updated_at=now
            )
    restore()

    assert (await migrate(empty_database))[0] == newer

    async with orm(empty_database):
        conn = Tortoise.get_connection(dialect)
        [row] = await conn.execute_query_dict('SELECT "users" FROM "users_count"')
        assert row["users"] == 3
        await User.create(
            email="later@example.com", password_hash="x", created_at=now, updated_at=now
        )
        [row] = await conn.execute_query_dict('SELECT "users" FROM "users_count"')
        assert row["users"] == 4


async def test_upgrading_puts_the_users_already_there_in_the_suffix_index(
    dialect: Dialect, empty_database: str, migrations_copy: Path
) -> None:
    newer, restore = hold_back(migrations_copy, dialect, "users_email_suffixes")
    await migrate(empty_database)
    async with orm(empty_database):
        await add_users(["early.bird@example.com", "second.early@example.com"])
    restore()

    assert await migrate(empty_database) == [newer]

    async with orm(empty_database):
        await add_users(["late.comer@example.com"])
        assert await index_finds(dialect, "early") == [
            "early.bird@example.com",
            "second.early@example.com",
        ]
        assert await index_finds(dialect, "late.comer") == ["late.comer@example.com"]


@pytest.fixture
async def scratch_pg_ascii() -> AsyncIterator[str]:
    """In SQL_ASCII, as `initdb --locale=C` makes them."""
    options = "ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
    async with pg_database_of_its_own(options) as name:
        yield name


async def add_users(emails: list[str]) -> None:
    now = datetime.now(UTC)
    for email in emails:
        await User.create(email=email, password_hash="x", created_at=now, updated_at=now)


async def index_finds(dialect: Dialect, text: str) -> list[str]:
    """The emails the suffix index finds for `text`, asked as a rare text's page asks
    (models/users.py): no walk of the emails first."""
    conn = Tortoise.get_connection(dialect)
    rows = await SEARCHED_PAGE[dialect].rows(conn, [*searched_values(dialect, text), "", 21])
    return [row["email"] for row in rows]


async def test_a_search_on_a_sql_ascii_postgres_cuts_the_text_as_its_index_does(
    scratch_pg_ascii: str,
) -> None:
    """There substr counts bytes: the index keeps suffixes of 16 bytes, and the search's text
    must be cut the same way (by the database) or a text of more than 16 bytes finds nobody."""
    url = pg_url(scratch_pg_ascii)
    await migrate(url)
    emails = ["x😀😀😀😀😀@y.io", "zoë.😀.émile@example.org", "plain.ascii.address@example.org"]
    async with orm(url):
        await add_users(emails)
        for text in (
            "😀😀😀😀😀",
            "zoë.😀.émile@exa",
            "ë.😀.émile@exam",
            "ascii.address@exam",
            "😀",
        ):
            assert await index_finds("postgres", text) == sorted(e for e in emails if text in e)


async def test_upgrading_postgres_rebuilds_a_suffix_index_left_invalid(
    scratch_pg: str, migrations_copy: Path
) -> None:
    """An index built beforehand by hand with CONCURRENTLY (docs/deployment.md) whose build
    failed is left invalid, which IF NOT EXISTS alone would keep and no search would use."""
    url = pg_url(scratch_pg)
    newer, restore = hold_back(migrations_copy, "postgres", "users_email_suffixes")
    await migrate(url)
    module = api.migrations.import_py_file(migrations_copy / "postgres" / newer)
    async with orm(url):
        conn = Tortoise.get_connection("postgres")
        await conn.execute_script(await module.upgrade(conn))  # function and index, by hand
        await conn.execute_script(
            "UPDATE pg_index SET indisvalid = false"
            " WHERE indexrelid = 'idx_users_email_suffixes'::regclass"
        )
    restore()

    assert await migrate(url) == [newer]

    async with orm(url):
        rows = await Tortoise.get_connection("postgres").execute_query_dict(
            "SELECT indisvalid FROM pg_index"
            " WHERE indexrelid = 'idx_users_email_suffixes'::regclass"
        )
    assert rows == [{"indisvalid": True}]


@pytest.mark.parametrize("dialect", ["sqlite"])
async def test_sqlite_refuses_an_email_longer_than_its_suffix_index_holds(
    dialect: Dialect, empty_database: str, migrations_copy: Path
) -> None:
    """SQLite's VARCHAR has no length (the model's 254 holds only for what tortoise writes):
    an email longer than the table of positions (1,024, or the longest already there at the
    upgrade) could not be found by a search, and is refused."""
    newer, restore = hold_back(migrations_copy, dialect, "users_email_suffixes")
    await migrate(empty_database)
    insert = (
        'INSERT INTO "users" ("id", "email", "password_hash", "role", "is_active",'
        ' "token_version", "created_at", "updated_at")'
        " VALUES (?, ?, 'x', 'user', 1, 0, '2026-01-01 00:00:00+00:00',"
        " '2026-01-01 00:00:00+00:00')"
    )
    long_id = str(uuid.uuid4())
    async with orm(empty_database):
        conn = Tortoise.get_connection(dialect)
        await conn.execute_query(insert, [long_id, "a" * 1100 + ".needle@example.test"])
    restore()

    assert await migrate(empty_database) == [newer]

    async with orm(empty_database):
        conn = Tortoise.get_connection(dialect)
        assert await count_users("needle") == 1  # the positions reach the longest email there
        with pytest.raises(IntegrityError, match="longer than the search index holds"):
            await conn.execute_query(insert, [str(uuid.uuid4()), "b" * 1200 + "@example.test"])
        with pytest.raises(IntegrityError, match="longer than the search index holds"):
            await conn.execute_query(
                'UPDATE "users" SET "email" = ? WHERE "id" = ?',
                ["c" * 1200 + ".needle@example.test", long_id],
            )
        assert await count_users("needle") == 1


async def test_a_search_on_postgres_works_without_standard_conforming_strings(
    scratch_pg: str,
) -> None:
    """A SQL function's body is parsed at each call under the caller's settings: the suffix
    query's backslashes must read the same with standard_conforming_strings off."""
    url = pg_url(scratch_pg)
    await migrate(url)
    await pg_admin(f'ALTER DATABASE "{scratch_pg}" SET standard_conforming_strings = off')
    emails = ["back\\slash@example.org", "o'brien@example.org", "plain@example.org"]
    async with orm(url):
        await add_users(emails)
        conn = Tortoise.get_connection("postgres")
        [row] = await conn.execute_query_dict("SHOW standard_conforming_strings")
        assert row["standard_conforming_strings"] == "off"
        for text in ("k\\s", "o'b", "\\", "'", "example.org"):
            assert await index_finds("postgres", text) == sorted(e for e in emails if text in e)


# The models and the migrations agree.


async def test_the_models_have_no_change_that_a_migration_lacks(
    dialect: Dialect, tmp_path: Path
) -> None:
    url = f"sqlite://{tmp_path / 'unused.sqlite3'}" if dialect == "sqlite" else pg_url("postgres")

    assert await models_in_sync(dialect, url) == ""


async def test_a_model_change_without_its_migration_is_reported(
    dialect: Dialect, tmp_path: Path, migrations_copy: Path
) -> None:
    """The check above can fail: pretend the last migration predates `users.last_login_at`."""
    last = migrations_copy / dialect / "models" / migration_files(dialect)[-1]
    source = last.read_text()
    state_block = source[source.index("MODELS_STATE = (") :]
    state = decompress_dict("".join(re.findall(r'"([^"]*)"', state_block)))
    fields = state["models.User"]["data_fields"]
    state["models.User"]["data_fields"] = [f for f in fields if f["name"] != "last_login_at"]
    last.write_text(source.replace(state_block, f'MODELS_STATE = "{compress_dict(state)}"\n'))
    url = f"sqlite://{tmp_path / 'unused.sqlite3'}" if dialect == "sqlite" else pg_url("postgres")

    missing = await models_in_sync(dialect, url)

    assert "last_login_at" in missing


# A failing migration.


async def test_a_failing_migration_is_named_and_leaves_sqlite_byte_for_byte_unchanged(
    tmp_path: Path, migrations_copy: Path
) -> None:
    db_file = tmp_path / "keyturn.sqlite3"
    url = f"sqlite://{db_file}"
    first = await migrate(url)
    (migrations_copy / "sqlite" / "models" / BROKEN_NAME).write_text(BROKEN)
    digest = sha256(db_file)

    with pytest.raises(MigrationError) as exc:
        await migrate(url)

    assert BROKEN_NAME in str(exc.value)
    assert "no_such_table" in str(exc.value)
    assert sha256(db_file) == digest
    assert not working_copies(tmp_path)
    tables, versions = await tables_and_versions(url)
    assert "half_done" not in tables
    assert versions == first


async def test_sqlite_is_not_migrated_under_a_keyturn_process_that_has_it_open(
    tmp_path: Path, migrations_copy: Path
) -> None:
    # The copy is written back whole: what a server committed meanwhile was lost (a rotation,
    # whose token then came back as reuse and revoked the session). So a migration with work
    # to do refuses while any Keyturn process has the file open; one with none says so.
    db_file = tmp_path / "keyturn.sqlite3"
    url = f"sqlite://{db_file}"
    first = await migrate(url)
    async with orm(url):
        await User.all().count()  # the connection is open, as a server's is
        assert await migrate(url) == []  # up to date: nothing to write, nothing refused
        (migrations_copy / "sqlite" / "models" / BROKEN_NAME).write_text(GOOD)
        digest = sha256(db_file)
        with pytest.raises(MigrationError, match="in use by a running Keyturn"):
            await migrate(url)
        assert sha256(db_file) == digest
        assert not working_copies(tmp_path)
    # Closed, as a stopped server's is: the migration runs.
    assert await migrate(url) == [BROKEN_NAME]
    _, versions = await tables_and_versions(url)
    assert versions == [*first, BROKEN_NAME]


async def test_a_migration_keeps_keyturn_from_opening_the_file_until_it_is_done(
    tmp_path: Path,
) -> None:
    db_file = tmp_path / "keyturn.sqlite3"
    url = f"sqlite://{db_file}"
    await migrate(url)
    opened = asyncio.Event()

    async def open_it() -> None:
        async with orm(url):
            await User.all().count()
            opened.set()

    with exclusive_use(db_file):  # what a migration holds
        opening = asyncio.create_task(open_it())
        await asyncio.sleep(0.3)
        assert not opened.is_set()  # it waits, rather than reading a file about to change
    async with asyncio.timeout(10):
        await opening
    assert opened.is_set()


async def test_a_failing_migration_on_an_empty_sqlite_file_creates_nothing(
    tmp_path: Path, migrations_copy: Path
) -> None:
    db_file = tmp_path / "keyturn.sqlite3"
    (migrations_copy / "sqlite" / "models" / BROKEN_NAME).write_text(BROKEN)

    with pytest.raises(MigrationError, match=re.escape(BROKEN_NAME)):
        await migrate(f"sqlite://{db_file}")

    assert not db_file.exists()


async def test_a_failing_migration_is_named_and_leaves_postgres_unchanged(
    scratch_pg: str, migrations_copy: Path
) -> None:
    url = pg_url(scratch_pg)
    first = await migrate(url)
    (migrations_copy / "postgres" / "models" / BROKEN_NAME).write_text(BROKEN)
    schema_before = await pg_schema(url)

    with pytest.raises(MigrationError) as exc:
        await migrate(url)

    assert BROKEN_NAME in str(exc.value)
    assert "no_such_table" in str(exc.value)
    tables, versions = await tables_and_versions(url)
    assert "half_done" not in tables
    assert versions == first
    assert await pg_schema(url) == schema_before


async def test_the_fixed_migration_applies_after_a_failure(
    dialect: Dialect, empty_database: str, migrations_copy: Path
) -> None:
    broken = migrations_copy / dialect / "models" / BROKEN_NAME
    broken.write_text(BROKEN)
    with pytest.raises(MigrationError):
        await migrate(empty_database)

    broken.write_text(BROKEN.replace('INSERT INTO "no_such_table" ("id") VALUES (1);', ""))
    applied = await migrate(empty_database)

    tables, versions = await tables_and_versions(empty_database)
    assert BROKEN_NAME in applied
    assert "half_done" in tables
    assert versions == migration_files(dialect)


async def test_an_upgrade_with_a_failing_migration_applies_none_of_its_migrations(
    dialect: Dialect, empty_database: str, migrations_copy: Path
) -> None:
    """A good migration followed by a broken one: the database keeps neither, on both dialects."""
    first = await migrate(empty_database)
    folder = migrations_copy / dialect / "models"
    (folder / "1_20990101000000_good.py").write_text(GOOD)
    (folder / "2_20990101000001_broken.py").write_text(BROKEN)

    with pytest.raises(MigrationError, match=re.escape("2_20990101000001_broken.py")):
        await migrate(empty_database)

    tables, versions = await tables_and_versions(empty_database)
    assert "good_one" not in tables
    assert "half_done" not in tables
    assert versions == first
