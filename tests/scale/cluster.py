"""Real Keyturn instances, a private Redis and a scratch PostgreSQL database, as subprocesses.

The tests stop this Redis mid-run, so it is never the shared one on 6379.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.processes import (
    START_TIMEOUT,
    free_port,
    keyturn_env,
    stop,
    wait_for_http,
    wait_until,
)


@dataclass
class RedisServer:
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    password: str | None = None  # --requirepass

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.process = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                *(["--requirepass", self.password] if self.password else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: _port_open(self.port), START_TIMEOUT, "redis-server")

    def shutdown(self) -> None:
        """Stop it the way an operator or a crash would: every client is cut off."""
        if self.process is None:
            return
        cli = shutil.which("redis-cli")
        if cli is not None:
            subprocess.run(
                [cli, "-p", str(self.port), "shutdown", "nosave"], capture_output=True, check=False
            )
        stop(self.process)  # what the shutdown has not ended yet, SIGTERM and SIGKILL end
        self.process = None


@dataclass
class Instance:
    """One `keyturn serve` process; its log (stderr and stdout) goes to a file."""

    name: str
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    password: str | None = None  # --requirepass
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def start(self) -> None:
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(self.port)],
            env=self.env,
            cwd=self.log_path.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def wait_ready(self) -> None:
        assert self.process is not None
        wait_for_http(self.process, f"http://127.0.0.1:{self.port}/readyz", self.log_path)

    def stop(self) -> None:
        self.client.close()
        stop(self.process)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def gql(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code < 500, response.text
        body: dict[str, Any] = response.json()
        return body


def instance_env(database_url: str, redis_url: str | None) -> dict[str, str]:
    settings = {
        "env": "development",
        "revocation_cache_ttl": "1",
        "registration_open": "true",
        "cookie_secure": "false",
    }
    if redis_url is not None:
        settings["redis_url"] = redis_url
    env = keyturn_env(database_url, **settings)
    env.pop("CI", None)
    return env


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
