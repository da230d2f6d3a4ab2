"""The GraphQL-over-HTTP audit suite of npm's graphql-http against a live Keyturn.

uvicorn serves a production-configured Keyturn (introspection on, which the audits use) on a
free port; tests/http_audit/audit.mjs runs
`auditServer` from graphql-http against it and prints one JSON line per audit. Every MUST and
every SHOULD audit has to pass. Node and the suite (installed by `make install`) are required
when CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ACCESS_SECRET, REFRESH_SECRET, require_service

ROOT = Path(__file__).resolve().parents[2]
AUDIT = ROOT / "tests" / "http_audit"
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def live_server(sqlite_template: Path, tmp_path: Path) -> Iterator[str]:
    # The audits never reach the database (`__typename`, `__type`): one backend is enough.
    database = tmp_path / "keyturn.sqlite3"
    shutil.copyfile(sqlite_template, database)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("KEYTURN_")}
    env.update(
        KEYTURN_ENV="production",
        # The audits probe with `__type(name:)`: introspection is the one default turned back on.
        KEYTURN_INTROSPECTION="true",
        KEYTURN_DATABASE_URL=f"sqlite://{database}",
        KEYTURN_ACCESS_TOKEN_SECRET=ACCESS_SECRET,
        KEYTURN_REFRESH_TOKEN_SECRET=REFRESH_SECRET,
        PYTHONPATH=str(ROOT),
    )
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.main:app_from_env",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=tmp_path,  # no .env or development secrets file from the work tree
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if server.poll() is not None:
                pytest.fail(f"the server stopped: {(tmp_path / 'server.log').read_text()}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the server did not start in time")
            time.sleep(0.1)
        yield f"{url}/graphql"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def node_suite() -> str | None:
    node = shutil.which("node")
    if node is None or not (AUDIT / "node_modules" / "graphql-http").is_dir():
        return None
    return node


def test_every_must_and_should_audit_passes(live_server: str) -> None:
    node = node_suite()
    require_service("node with tests/http_audit installed (make install)", node is not None)
    assert node is not None
    run = subprocess.run(
        [node, str(AUDIT / "audit.mjs"), live_server],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    results = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert len(results) > 50, run.stdout

    failed_must = [r for r in results if r["name"].startswith("MUST") and r["status"] != "ok"]
    failed_should = [r for r in results if r["name"].startswith("SHOULD") and r["status"] != "ok"]
    assert failed_must == []
    assert failed_should == []
