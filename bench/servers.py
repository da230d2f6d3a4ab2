"""Starting what the benchmark measures: databases, uvicorn servers, and wrk runs."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from api.db import sqlite_path
from api.tokens import TokenService

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "lua"
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
# Every per-client limit out of the way: the benchmark is one client hammering on purpose.
UNLIMITED = "1000000000"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(database_url: str, secrets: tuple[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "KEYTURN_ENV": "production",
            "KEYTURN_DATABASE_URL": database_url,
            "KEYTURN_ACCESS_TOKEN_SECRET": secrets[0],
            "KEYTURN_REFRESH_TOKEN_SECRET": secrets[1],
            "KEYTURN_LOGIN_MAX_FAILURES_PER_ACCOUNT": UNLIMITED,
            "KEYTURN_LOGIN_MAX_ATTEMPTS_PER_IP": UNLIMITED,
            "KEYTURN_REGISTER_MAX_PER_IP": UNLIMITED,
            "KEYTURN_REFRESH_MAX_PER_IP": UNLIMITED,
        }
    )
    return env


@dataclass
class Server:
    """uvicorn as `keyturn serve` runs it, with the access log off."""

    app: str
    env: dict[str, str]
    workers: int
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        log = (self.workdir / f"server-{self.port}.log").open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                self.app,
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--no-server-header",
                "--log-level",
                "warning",
            ],
            env=self.env,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        ready = 0
        while ready < self.workers * 3:  # let every worker take a few requests first
            assert self.process is not None
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.app} did not start:\n{self.log()}")
            try:
                httpx.post(
                    f"http://127.0.0.1:{self.port}/graphql",
                    json={"query": "{ __typename }"},
                    timeout=2,
                )
                ready += 1
            except httpx.TransportError:
                time.sleep(0.1)

    def cpu_seconds(self) -> float | None:
        return process_cpu_seconds(self.process.pid) if self.process is not None else None

    def log(self) -> str:
        return (self.workdir / f"server-{self.port}.log").read_text(errors="replace")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    # CPU seconds the server's processes spent during the run, when it was read (Linux).
    server_cpu_s: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def requests_per_cpu_s(self) -> float | None:
        """Requests served per second of the server's CPU: throughput with the machine's other
        load taken out."""
        if not self.server_cpu_s:
            return None
        return self.requests / self.server_cpu_s


def wrk_command(
    case: str, port: int, seconds: float, connections: int, workdir: Path, *args: str
) -> list[str]:
    script = workdir / f"{case}.lua"
    if not script.exists():
        script.write_text((LUA / "common.lua").read_text() + (LUA / f"{case}.lua").read_text())
    return [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}/graphql",
        "--",
        *args,
    ]


def parse_wrk(output: str) -> WrkResult:
    for line in output.splitlines():
        if line.startswith("BENCH "):
            raw: dict[str, Any] = json.loads(line.removeprefix("BENCH "))
            return WrkResult(
                requests=raw["requests"],
                seconds=raw["duration_us"] / 1e6,
                errors=raw["errors"] + raw["gql_errors"],
                p50_ms=raw["p50_us"] / 1000,
                p99_ms=raw["p99_us"] / 1000,
            )
    raise RuntimeError(f"wrk printed no result:\n{output}")


def run_wrk(command: list[str], server: Server | None = None) -> WrkResult:
    """One wrk run; with `server`, the CPU its processes spent meanwhile too."""
    before = server.cpu_seconds() if server is not None else None
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result = parse_wrk(done.stdout)
    after = server.cpu_seconds() if server is not None else None
    if before is None or after is None:
        return result
    return dataclasses.replace(result, server_cpu_s=after - before)


def process_cpu_seconds(pid: int) -> float | None:
    """User and system CPU seconds of process `pid` and of its children (uvicorn's workers, and
    with them multiprocessing's idle resource tracker), from /proc; None where there is no
    /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        stats = [Path(f"/proc/{pid}/stat").read_text()]
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    for child in children:
        with contextlib.suppress(OSError):  # a worker that has just ended
            stats.append(Path(f"/proc/{child}/stat").read_text())
    for stat in stats:
        # After the command's name in brackets, which may itself hold spaces: utime is the
        # 14th field and stime the 15th, counted from 1.
        fields = stat.rpartition(")")[2].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


@dataclass(frozen=True)
class BenchSession:
    user_id: uuid.UUID
    session_id: uuid.UUID
    token_id: uuid.UUID
    token_version: int
    rotated_at: datetime
    email: str


_LIVE_SESSIONS = (
    "SELECT s.id, s.user_id, s.current_token_id, s.token_version, s.rotated_at, "
    "s.expires_at, s.absolute_expires_at, u.email FROM sessions s "
    "JOIN users u ON u.id = s.user_id WHERE s.revoked_at IS NULL ORDER BY s.id"
)


def _when(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def live_sessions(database_url: str) -> list[BenchSession]:
    if database_url.startswith("sqlite"):
        path = sqlite_path(database_url)
        assert path is not None
        with sqlite3.connect(path) as db:
            rows: list[Any] = db.execute(_LIVE_SESSIONS).fetchall()
    else:
        conn = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
        try:
            rows = [tuple(r) for r in await conn.fetch(_LIVE_SESSIONS)]
        finally:
            await conn.close()
    now = datetime.now(UTC)
    return [
        BenchSession(
            user_id=uuid.UUID(str(uid)),
            session_id=uuid.UUID(str(sid)),
            token_id=uuid.UUID(str(tid)),
            token_version=ver,
            rotated_at=_when(rot),
            email=email,
        )
        for sid, uid, tid, ver, rot, exp, absolute, email in rows
        if _when(exp) > now and _when(absolute) > now
    ]


def access_token(tokens: TokenService, s: BenchSession) -> str:
    token, _ = tokens.issue_access(
        user_id=s.user_id,
        session_id=s.session_id,
        token_version=s.token_version,
        role="user",
        now=datetime.now(UTC),
    )
    return token


def refresh_token(tokens: TokenService, s: BenchSession) -> str:
    token, _ = tokens.issue_refresh(
        user_id=s.user_id,
        session_id=s.session_id,
        token_id=s.token_id,
        token_version=s.token_version,
        issued_at=s.rotated_at,
    )
    return token


async def _as_admin(statement: str) -> None:
    """Runs one statement on the server's `postgres` database (CREATE or DROP DATABASE)."""
    conn = await asyncpg.connect(
        PG_ADMIN_URL.replace("postgres://", "postgresql://", 1) + "/postgres"
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def create_pg_database(name: str) -> str:
    await _as_admin(f'CREATE DATABASE "{name}"')
    return f"{PG_ADMIN_URL}/{name}"


async def copy_pg_database(source: str, name: str) -> str:
    """A new database `name` made from `source`'s (which nobody may be connected to)."""
    await _as_admin(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
    return f"{PG_ADMIN_URL}/{name}"


async def drop_pg_database(name: str) -> None:
    await _as_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
