"""`keyturn serve` as a process: its log lines, and how it stops."""

from __future__ import annotations

import asyncio
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from api.cli import SHUTDOWN_GRACE
from api.migrations import migrate
from tests.conftest import PG_HOST, PG_PORT, pg_admin, pg_url, port_open, require_service
from tests.processes import free_port, keyturn_env
from tests.tcpproxy import TcpProxy

KEYTURN = Path(sys.executable).with_name("keyturn")
TIMED_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR) [\w.]+: ")


@dataclass
class Served:
    base: str  # http://127.0.0.1:<port>
    log: Path
    process: asyncio.subprocess.Process


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    """Polls `check` for up to 20 s without blocking the loop the proxy runs on."""
    for _ in range(200):
        if await check():
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"{check.__name__} was not so within 20 s")


@asynccontextmanager
async def serving(folder: Path, database_url: str) -> AsyncIterator[Served]:
    port = free_port()
    log = folder / "serve.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            str(KEYTURN),
            *("serve", "--port", str(port)),
            cwd=folder,
            env=keyturn_env(database_url),
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"

    async def up() -> bool:
        assert process.returncode is None, log.read_text()
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(f"{base}/healthz")).status_code == 200
        except httpx.TransportError:
            return False

    try:
        await until(up)
        yield Served(base, log, process)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(SHUTDOWN_GRACE + 10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


def server_lines(log: Path) -> list[str]:
    return log.read_text().splitlines()


async def test_every_line_of_the_server_carries_its_time(tmp_path: Path) -> None:
    # uvicorn's own lines had none ("INFO:     Started server process"), so an operator could
    # not tell when a worker started, stopped or died.
    url = f"sqlite://{tmp_path / 'k.sqlite3'}"
    await migrate(url)
    async with serving(tmp_path, url) as served, httpx.AsyncClient() as client:
        assert (await client.get(f"{served.base}/readyz")).status_code == 200
    lines = server_lines(served.log)
    assert any("INFO uvicorn: Uvicorn running on" in line for line in lines), lines
    assert any("INFO keyturn.access: GET /readyz 200" in line for line in lines), lines
    # The hint `serve` gives before the server starts, on a database without an admin, too.
    assert any(
        "WARNING keyturn: No admin yet. Create the first one with: .venv/bin/keyturn users"
        " create admin@example.com --admin" in line
        for line in lines
    ), lines
    for line in lines:
        assert TIMED_LINE.match(line), line


async def test_a_postgresql_outage_is_logged_in_lines_not_tracebacks(tmp_path: Path) -> None:
    # asyncpg's pool logs each failed reconnect with a 30-line traceback of its connect path.
    require_service("PostgreSQL", port_open(PG_HOST, PG_PORT))
    name = f"keyturn_test_{uuid.uuid4().hex[:10]}"
    await pg_admin(f'CREATE DATABASE "{name}"')
    proxy = TcpProxy(PG_HOST, PG_PORT)
    await proxy.start()
    try:
        await migrate(pg_url(name))
        async with (
            serving(tmp_path, pg_url(name, port=proxy.port)) as served,
            httpx.AsyncClient(base_url=served.base) as client,
        ):
            assert (await client.get("/readyz")).status_code == 200
            await proxy.stop()
            assert (await client.get("/readyz")).status_code == 503

            async def retried() -> bool:
                return any("asyncpg.pool" in line for line in server_lines(served.log))

            await until(retried)
            await proxy.start()

            async def ready() -> bool:
                return (await client.get("/readyz")).status_code == 200

            await until(ready)
    finally:
        await proxy.stop()
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    lines = server_lines(served.log)
    assert "Traceback" not in served.log.read_text(), served.log.read_text()
    retries = [line for line in lines if "asyncpg.pool" in line]
    assert "WARNING asyncpg.pool: Failed to restore the pool connection floor" in retries[0]
    assert "Error" in retries[0], retries  # its cause, in the same line
    for line in lines:
        assert TIMED_LINE.match(line), line


async def test_a_client_that_never_finishes_its_body_cannot_hold_off_shutdown(
    tmp_path: Path,
) -> None:
    # uvicorn waited for every connection to close: one client that sent half a body held a
    # SIGTERM off for as long as it stayed connected, until the supervisor's SIGKILL cut
    # every answer in flight.
    url = f"sqlite://{tmp_path / 'k.sqlite3'}"
    await migrate(url)
    async with serving(tmp_path, url) as served:
        port = int(served.base.rsplit(":", 1)[1])
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"query":'
        )
        await writer.drain()
        started = time.monotonic()
        served.process.terminate()
        try:
            async with asyncio.timeout(SHUTDOWN_GRACE + 10):
                await served.process.wait()
        finally:
            writer.close()
        elapsed = time.monotonic() - started
    assert SHUTDOWN_GRACE - 1 <= elapsed < SHUTDOWN_GRACE + 5, elapsed
