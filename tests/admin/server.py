"""A real Keyturn server for browser tests: `keyturn serve` on a free port, on its own migrated
SQLite file, with its own working folder (so no developer `.env` or secrets file is read)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from api.migrations import migrate
from tests.conftest import LOGIN, PASSWORD
from tests.processes import free_port, keyturn_env, stop, wait_for_http

KEYTURN = shutil.which("keyturn", path=str(Path(sys.executable).parent)) or "keyturn"
ADMIN_EMAIL = "admin@example.com"


class KeyturnServer:
    def __init__(self, folder: Path, **settings: str) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = f"sqlite://{folder / 'keyturn.sqlite3'}"
        # The tests' API clients log in "from" documentation addresses (RFC 5737).
        self.env = keyturn_env(self.database_url, trusted_proxies="127.0.0.1", **settings)
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
        wait_for_http(self.process, f"{self.url}/healthz", self.log)

    def stop(self) -> None:
        stop(self.process)

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
