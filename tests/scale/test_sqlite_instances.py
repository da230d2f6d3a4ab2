"""Two real instances on one SQLite file, as `keyturn serve --workers 2` runs: concurrent writes
from both queue for SQLite's write lock, and none is answered SERVICE_UNAVAILABLE.

Two `keyturn serve` processes rather than one with two workers, so that every request is known
to land on the process it was sent to.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD
from tests.scale.cluster import Instance
from tests.scale.conftest import start_pair
from tests.scale.test_instances import REGISTER, codes

USERS = 10
SESSIONS = 50
LOGIN = """
mutation ($e: String!, $p: String!) {
  login(input: {email: $e, password: $p, refreshTokenDelivery: BODY}) { refreshToken }
}
"""
REFRESH = """
mutation ($t: String!) {
  refresh(refreshToken: $t, refreshTokenDelivery: BODY) { refreshToken session { id } }
}
"""


@pytest.fixture
def pair(tmp_path: Path, sqlite_template: Path) -> Iterator[tuple[Instance, Instance]]:
    database = tmp_path / "keyturn.sqlite3"
    shutil.copyfile(sqlite_template, database)
    a, b = start_pair(f"sqlite://{database}", None, tmp_path)
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


async def _all_at_once(
    pair: tuple[Instance, Instance], query: str, variables: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Send every request at once, alternating between the two instances."""
    async with (
        httpx.AsyncClient(base_url=pair[0].client.base_url, timeout=30) as a,
        httpx.AsyncClient(base_url=pair[1].client.base_url, timeout=30) as b,
    ):
        responses = await asyncio.gather(
            *(
                (a, b)[i % 2].post("/graphql", json={"query": query, "variables": v})
                for i, v in enumerate(variables)
            )
        )
    return [response.json() for response in responses]


async def test_concurrent_refreshes_on_two_processes_sharing_the_file_all_succeed(
    pair: tuple[Instance, Instance],
) -> None:
    # Several users: a login in flight holds one of its account's 10 failures (api/ratelimit.py).
    emails = [f"user-{uuid.uuid4().hex[:8]}@example.com" for _ in range(USERS)]
    for i, email in enumerate(emails):
        assert not codes(pair[i % 2].gql(REGISTER, {"e": email, "p": PASSWORD}))
    logins = await _all_at_once(
        pair, LOGIN, [{"e": emails[i % USERS], "p": PASSWORD} for i in range(SESSIONS)]
    )
    assert [codes(body) for body in logins] == [[]] * SESSIONS, logins

    # Each refresh reads its session, rotates it with a conditional UPDATE and records an event:
    # on a deferred transaction the write after the read got "database is locked" at once.
    tokens = [{"t": body["data"]["login"]["refreshToken"]} for body in logins]
    refreshes = await _all_at_once(pair, REFRESH, tokens)

    assert [codes(body) for body in refreshes] == [[]] * SESSIONS, refreshes
    sessions = {body["data"]["refresh"]["session"]["id"] for body in refreshes}
    assert len(sessions) == SESSIONS
    rotated = {body["data"]["refresh"]["refreshToken"] for body in refreshes}
    assert len(rotated) == SESSIONS
    assert not rotated & {t["t"] for t in tokens}
