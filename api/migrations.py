"""Applying and generating migrations.

aerich writes SQL for the database it ran against, so there is one history per dialect
(`migrations/sqlite/models`, `migrations/postgres/models`), both generated from the same models by
`python -m api.migrations make NAME`. Either every pending migration is applied or none is:
PostgreSQL runs them all in one transaction (so no migration may need to run outside one, as
CREATE INDEX CONCURRENTLY does). SQLite's `executescript` commits as it goes, so an SQLite
upgrade works on a copy of the file and only replaces the original once every migration has
been applied.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
import sys
import tempfile
import uuid
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

from aerich import Command
from aerich.migrate import Migrate
from aerich.models import Aerich
from aerich.utils import decompress_dict, get_models_describe, import_py_file
from tortoise import BaseDBAsyncClient, Tortoise
from tortoise.exceptions import OperationalError
from tortoise.transactions import in_transaction

from api.db import Dialect, dialect_of, is_unavailable, sqlite_path, tortoise_config
from api.sqlite import DatabaseInUse, exclusive_use

logger = logging.getLogger("keyturn.migrations")

MIGRATIONS_ROOT = Path(__file__).resolve().parent.parent / "migrations"
MIGRATION_LOCK = int.from_bytes(b"keyturn")  # PostgreSQL advisory lock: one migrate at a time
APP = "models"


class MigrationError(Exception):
    """A migration that could not be applied; the database was left as it was."""


class DatabaseUnavailable(Exception):
    pass


def location(dialect: Dialect) -> Path:
    return MIGRATIONS_ROOT / dialect


def migration_files(dialect: Dialect) -> list[str]:
    folder = location(dialect) / APP
    files = [p.name for p in folder.glob("*.py") if p.stem.split("_", 1)[0].isdigit()]
    return sorted(files, key=lambda name: int(name.split("_", 1)[0]))


async def applied_migrations(dialect: Dialect) -> list[str] | None:
    """The migrations recorded in the connected database, or None when it was never migrated."""
    conn = Tortoise.get_connection(dialect)
    try:
        _, rows = await conn.execute_query("SELECT version FROM aerich WHERE app = 'models'")
    except OperationalError as exc:
        if is_unavailable(exc):
            raise
        return None
    return [row["version"] for row in rows]


async def pending_migrations(database_url: str) -> list[str] | None:
    """Migrations not yet applied, on an already initialised tortoise; None if never migrated."""
    dialect = dialect_of(database_url)
    applied = await applied_migrations(dialect)
    if applied is None:
        return None
    return [name for name in migration_files(dialect) if name not in applied]


async def migrate(database_url: str) -> list[str]:
    """Apply every pending migration; returns their names. Never leaves a half-migrated database."""
    # A task of its own: tortoise keeps its state in a context variable, and aerich needs a
    # fresh one for each run.
    return await asyncio.create_task(_migrate(database_url))


async def _migrate(database_url: str) -> list[str]:
    dialect = dialect_of(database_url)
    db_file = sqlite_path(database_url)
    if db_file is not None:
        return await _migrate_sqlite_copy(database_url, db_file)
    return await _upgrade(tortoise_config(database_url), dialect)


async def _upgrade(config: dict[str, Any], dialect: Dialect) -> list[str]:
    try:
        try:
            await Tortoise.init(config=config)
            applied_before = await applied_migrations(dialect) or []
        except Exception as exc:
            if is_unavailable(exc):
                raise DatabaseUnavailable(str(exc)) from exc
            raise
        pending = [name for name in migration_files(dialect) if name not in applied_before]
        unknown = sorted(set(applied_before) - set(migration_files(dialect)))
        if unknown:
            # Served as it is (a rolling upgrade runs old instances on a newer schema), but an
            # operator running an older `keyturn migrate` should know it changed nothing.
            logger.warning(
                "the database has migrations this version of Keyturn does not know: %s "
                "(migrated by a newer version)",
                ", ".join(unknown),
            )
        if dialect == "sqlite":
            conn = Tortoise.get_connection(dialect)
            for name in pending:
                await _apply(conn, dialect, name)
            return pending
        # PostgreSQL's DDL is transactional: one transaction around every pending migration
        # makes the upgrade all or nothing. (aerich's own upgrade commits migration by migration,
        # and probes for its table with a query that would abort an enclosing transaction.)
        async with in_transaction(dialect) as tx:
            # One `keyturn migrate` at a time: another one waits here until this one commits,
            # then finds the work done (two applying the same migrations collided on aerich's
            # table, and the second failed with a duplicate key). Read inside the lock.
            await tx.execute_query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK])
            if pending:
                done = await _recorded(tx)
                pending = [name for name in pending if name not in done]
            for name in pending:
                await _apply(tx, dialect, name)
        return pending
    finally:
        await Tortoise.close_connections()


async def _recorded(tx: BaseDBAsyncClient) -> set[str]:
    """The migrations aerich's table records, read in a PostgreSQL transaction without
    aborting it when the table is not there yet."""
    rows = await tx.execute_query_dict("SELECT to_regclass('aerich') IS NOT NULL AS present")
    if not rows[0]["present"]:
        return set()
    found = await tx.execute_query_dict("SELECT version FROM aerich WHERE app = 'models'")
    return {row["version"] for row in found}


async def _apply(conn: BaseDBAsyncClient, dialect: Dialect, name: str) -> None:
    """Run one migration file's upgrade SQL and record it, as aerich's `upgrade` does."""
    try:
        module = import_py_file(location(dialect) / APP / name)
        await conn.execute_script(await module.upgrade(conn))
        state = getattr(module, "MODELS_STATE", None)
        content = decompress_dict(state) if state else get_models_describe(APP)
        await Aerich.create(version=name, app=APP, content=content, using_db=conn)
    except Exception as exc:
        if is_unavailable(exc):
            raise DatabaseUnavailable(str(exc)) from exc
        raise MigrationError(f"migration {name} failed: {exc}") from exc


async def _migrate_sqlite_copy(database_url: str, db_file: Path) -> list[str]:
    folder = db_file.parent
    if not folder.is_dir():
        raise DatabaseUnavailable(f"the folder {folder} does not exist")
    try:
        work_dir = Path(tempfile.mkdtemp(prefix="keyturn-migrate-", dir=folder))
    except OSError as exc:
        raise DatabaseUnavailable(f"cannot write in {folder}: {exc.strerror}") from exc
    work_file = work_dir / db_file.name
    try:
        # The copy is migrated and written back whole: a write committed by another process
        # in between would be lost (a served refresh's rotation, whose token then came back as
        # reuse and revoked its session). So no Keyturn process may have the file open
        # meanwhile, and none can open it until this is done.
        with exclusive_use(db_file):
            return await _migrate_copy(database_url, db_file, work_file)
    except DatabaseInUse:
        if not _pending_in(db_file):
            return []  # nothing to write: a served database that is up to date stays served
        raise MigrationError(
            f"{db_file} is in use by a running Keyturn (a server or another command): stop it, "
            "then migrate; an SQLite database is migrated with the service stopped"
        ) from None
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _pending_in(db_file: Path) -> list[str]:
    """The migrations an SQLite file lacks, read straight from it (read-only, no lock file)."""
    try:
        with closing(sqlite3.connect(f"{db_file.as_uri()}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT version FROM aerich WHERE app = 'models'").fetchall()
    except sqlite3.Error:
        return migration_files("sqlite")  # not migrated at all, or unreadable: all of them
    applied = {row[0] for row in rows}
    return [name for name in migration_files("sqlite") if name not in applied]


async def _migrate_copy(database_url: str, db_file: Path, work_file: Path) -> list[str]:
    """Migrate a copy of the file, then write it back over the file: all or nothing."""
    if db_file.exists():
        try:
            copy_sqlite_file(db_file, work_file)
        except sqlite3.DatabaseError as exc:
            raise MigrationError(f"{db_file} is not an SQLite database ({exc})") from exc
    config = tortoise_config(database_url)
    config["connections"]["sqlite"]["credentials"]["file_path"] = str(work_file)
    applied = await _upgrade(config, "sqlite")
    if applied:
        copy_sqlite_file(work_file, db_file)
    return applied


def copy_sqlite_file(source: Path, target: Path) -> None:
    """A consistent copy of an SQLite database: the backup API copies a snapshot (WAL
    included) and writes the target atomically."""
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


async def models_in_sync(dialect: Dialect, database_url: str) -> str:
    return await asyncio.create_task(_models_in_sync(dialect, database_url))


async def _models_in_sync(dialect: Dialect, database_url: str) -> str:
    """Compare the models with the last migration of a history; returns the missing change.

    Runs aerich's diff offline on a copy of the history, so nothing in the repository changes.
    An empty string means every model change has its migration.
    """
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(location(dialect), Path(tmp) / dialect)
        command = Command(tortoise_config(database_url), app=APP, location=str(Path(tmp) / dialect))
        try:
            await Migrate.init(command.tortoise_config, APP, command.location, offline=True)
            result = await command.migrate("check", no_input=True, offline=True)
            if not result:
                return ""
            return (Path(tmp) / dialect / APP / result).read_text()
        finally:
            await Tortoise.close_connections()


async def make_migrations(name: str, dialect: Dialect, postgres_admin_url: str) -> None:
    """Generate the next migration of one dialect from the current models (a developer tool).

    Run once per dialect, each in its own process: aerich keeps the dialect in class state.
    """
    if dialect == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            await _make_for(f"sqlite://{tmp}/make.sqlite3", "sqlite", name)
        return
    scratch = f"keyturn_make_{uuid.uuid4().hex[:8]}"
    admin = await _pg_admin(postgres_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{scratch}"')
        base = postgres_admin_url.rsplit("/", 1)[0]
        await _make_for(f"{base}/{scratch}", "postgres", name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{scratch}"')
        await admin.close()


async def _pg_admin(url: str) -> Any:
    import asyncpg

    return await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))


async def _make_for(url: str, dialect: Dialect, name: str) -> None:
    folder = location(dialect)
    command = Command(tortoise_config(url), app=APP, location=str(folder))
    try:
        if not migration_files(dialect):
            await command.init_db(safe=True)
            print(f"{dialect}: created the initial migration")
            return
        await command.init()
        await command.upgrade(run_in_transaction=True)
        created = await command.migrate(name, no_input=True)
        print(f"{dialect}: {created or 'no changes'}")
    finally:
        await Tortoise.close_connections()


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "make" or sys.argv[3] not in ("sqlite", "postgres"):
        sys.exit("usage: python -m api.migrations make NAME sqlite|postgres")
    pg_url = "postgres://postgres@127.0.0.1:5432/postgres"
    with suppress(KeyboardInterrupt):
        asyncio.run(make_migrations(sys.argv[2], sys.argv[3], pg_url))  # type: ignore[arg-type]
