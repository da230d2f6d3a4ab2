"""Keyturn servers the tests run as subprocesses: their ports, environment, start and stop."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import ACCESS_SECRET, REFRESH_SECRET

START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(ready: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not come up within {timeout}s")
        time.sleep(0.05)


def keyturn_env(database_url: str, **settings: str) -> dict[str, str]:
    """This process's environment without its KEYTURN_* settings, then the tests' secrets, the
    database and `settings` (`trusted_proxies="…"` becomes KEYTURN_TRUSTED_PROXIES)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("KEYTURN_")}
    env.update(
        KEYTURN_DATABASE_URL=database_url,
        KEYTURN_ACCESS_TOKEN_SECRET=ACCESS_SECRET,
        KEYTURN_REFRESH_TOKEN_SECRET=REFRESH_SECRET,
        **{f"KEYTURN_{key.upper()}": value for key, value in settings.items()},
    )
    return env


def wait_for_http(
    process: subprocess.Popen[bytes], url: str, log: Path, timeout: float = START_TIMEOUT
) -> None:
    """Until `url` answers 200; a server that exits or stays silent fails with its log."""

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited:\n{log.read_text(errors='replace')}")
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, timeout, url)
    except TimeoutError as exc:
        stop(process)
        raise RuntimeError(f"{exc}:\n{log.read_text(errors='replace')}") from None


def stop(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, as a supervisor stops it; SIGKILL if it has not exited 10 s later."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
