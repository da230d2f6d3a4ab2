"""Fixtures for the multi-instance tests: a scratch PostgreSQL database, Redis, two instances."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from api.migrations import migrate
from tests.conftest import PASSWORD, PG_HOST, PG_PORT, pg_url, port_open, require_service
from tests.scale.cluster import Instance, RedisServer, instance_env


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(pg_url("postgres", "postgresql"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def scale_database() -> Iterator[str]:
    """A PostgreSQL database of its own, migrated, shared by the instances of one module."""
    require_service("PostgreSQL", port_open(PG_HOST, PG_PORT))
    name = f"keyturn_scale_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(migrate(pg_url(name)))
        yield pg_url(name)
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def start_redis() -> RedisServer:
    require_service("redis-server", shutil.which("redis-server") is not None)
    server = RedisServer()
    server.start()
    return server


def start_pair(database_url: str, redis_url: str | None, folder: Path) -> tuple[Instance, Instance]:
    env = instance_env(database_url, redis_url)
    pair = (
        Instance("instance A", env, folder / "a.log"),
        Instance("instance B", env, folder / "b.log"),
    )
    for instance in pair:
        instance.start()
    try:
        for instance in pair:
            instance.wait_ready()
    except BaseException:
        for instance in pair:
            instance.stop()
        raise
    return pair


def create_admin(database_url: str, email: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "api.cli", "users", "create", email, "--admin", "--password-stdin"],
        input=f"{PASSWORD}\n".encode(),
        env=instance_env(database_url, None),
        capture_output=True,
        check=True,
    )
