"""The GraphQL-over-HTTP audit suite of npm's graphql-http against a live Keyturn.

uvicorn serves a production-configured Keyturn (introspection on, which the audits use) on a
free port; tests/http_audit/audit.mjs runs
`auditServer` from graphql-http against it and prints one JSON line per audit. Every MUST and
every SHOULD audit has to pass. Node and the suite (installed by `make install`) are required
when CI=true.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_service
from tests.processes import free_port, keyturn_env, stop, wait_for_http

ROOT = Path(__file__).resolve().parents[2]
AUDIT = ROOT / "tests" / "http_audit"


@pytest.fixture
def live_server(sqlite_template: Path, tmp_path: Path) -> Iterator[str]:
    # The audits never reach the database (`__typename`, `__type`): one backend is enough.
    database = tmp_path / "keyturn.sqlite3"
    shutil.copyfile(sqlite_template, database)
    port = free_port()
    env = keyturn_env(
        f"sqlite://{database}",
        env="production",
        # The audits probe with `__type(name:)`: introspection is the one default turned back on.
        introspection="true",
    )
    env["PYTHONPATH"] = str(ROOT)
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
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
        wait_for_http(server, f"{url}/healthz", log_path)
        yield f"{url}/graphql"
    finally:
        stop(server)


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
