"""A real Keyturn server for browser tests: `keyturn serve` on a free port, on its own migrated
SQLite file, with its own working folder (so no developer `.env` or secrets file is read)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from api.migrations import migrate
from tests.conftest import ACCESS_SECRET, LOGIN, PASSWORD, REFRESH_SECRET

KEYTURN = shutil.which("keyturn", path=str(Path(sys.executable).parent)) or "keyturn"
START_TIMEOUT = 30.0
ADMIN_EMAIL = "admin@example.com"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class KeyturnServer:
    def __init__(self, folder: Path, **settings: str) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = f"sqlite://{folder / 'keyturn.sqlite3'}"
        self.env = {
            key: value for key, value in os.environ.items() if not key.startswith("KEYTURN_")
        }
        self.env.update(
            KEYTURN_DATABASE_URL=self.database_url,
            KEYTURN_ACCESS_TOKEN_SECRET=ACCESS_SECRET,
            KEYTURN_REFRESH_TOKEN_SECRET=REFRESH_SECRET,
            # The tests' API clients log in "from" documentation addresses (RFC 5737).
            KEYTURN_TRUSTED_PROXIES="127.0.0.1",
            **{f"KEYTURN_{key.upper()}": value for key, value in settings.items()},
        )
        self.log = folder / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def keyturn(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [KEYTURN, *args],
            cwd=self.folder,
            env=self.env,
            input=stdin.encode() if stdin is not None else None,
            capture_output=True,
            check=False,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout.decode()

    def start(self) -> None:
        asyncio.run(migrate(self.database_url))
        self.keyturn("users", "create", ADMIN_EMAIL, "--admin", "--password-stdin", stdin=PASSWORD)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [KEYTURN, "serve", "--port", str(self.port)],
                cwd=self.folder,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"keyturn serve exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"keyturn serve did not answer in {START_TIMEOUT}s:\n{self.log.read_text()}"
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    # A client of the API, as an app on another device would be.

    def gql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        response = httpx.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": variables or {}},
            headers=sent,
            timeout=10,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def login(
        self,
        email: str,
        *,
        user_agent: str = "python-httpx",
        address: str = "198.51.100.1",
        password: str = PASSWORD,
    ) -> dict[str, Any]:
        """Logs in with BODY delivery from the given device and address."""
        body = self.gql(
            LOGIN,
            {"email": email, "password": password, "d": "BODY"},
            headers={"User-Agent": user_agent, "X-Forwarded-For": address},
        )
        assert "errors" not in body, body
        payload: dict[str, Any] = body["data"]["login"]
        return payload

    def admin_token(self) -> str:
        token: str = self.login(ADMIN_EMAIL)["accessToken"]
        return token

    def create_user(self, email: str, role: str = "USER", token: str | None = None) -> str:
        body = self.gql(
            """mutation ($email: String!, $password: String!, $role: Role!) {
                 createUser(input: {email: $email, password: $password, role: $role}) { id }
               }""",
            {"email": email, "password": PASSWORD, "role": role},
            token=token or self.admin_token(),
        )
        assert "errors" not in body, body
        user_id: str = body["data"]["createUser"]["id"]
        return user_id

    def only_admin(self) -> None:
        """Make the console's admin the only active admin again: a test that failed half way
        through promoting someone may have left a second one behind."""
        token = self.admin_token()
        after = None
        while True:
            body = self.gql(
                """query ($after: String) {
                     users(first: 100, after: $after) {
                       edges { node { id email role isActive } }
                       pageInfo { hasNextPage endCursor }
                     }
                   }""",
                {"after": after},
                token=token,
            )
            assert "errors" not in body, body
            page = body["data"]["users"]
            for edge in page["edges"]:
                user = edge["node"]
                if user["role"] == "ADMIN" and user["isActive"] and user["email"] != ADMIN_EMAIL:
                    demoted = self.gql(
                        "mutation ($id: ID!) { setUserRole(userId: $id, role: USER) { id } }",
                        {"id": user["id"]},
                        token=token,
                    )
                    assert "errors" not in demoted, demoted
            if not page["pageInfo"]["hasNextPage"]:
                return
            after = page["pageInfo"]["endCursor"]

    def refresh_error(self, refresh_token: str) -> str | None:
        """The error code of a refresh with this token, or None when it works."""
        body = self.gql(
            "mutation ($t: String!) { refresh(refreshToken: $t) { accessToken } }",
            {"t": refresh_token},
        )
        errors = body.get("errors") or []
        return errors[0]["extensions"]["code"] if errors else None
