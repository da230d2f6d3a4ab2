"""api.middleware.DirectRoute: GraphQL POSTs skip the router; nothing else does."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from api.middleware import DirectRoute
from tests.conftest import Harness


class Recorder:
    def __init__(self, name: str, seen: list[str]) -> None:
        self.name, self.seen = name, seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.seen.append(self.name)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.mark.parametrize(
    ("method", "path", "root_path", "taken"),
    [
        ("POST", "/graphql", "", "endpoint"),
        ("GET", "/graphql", "", "router"),
        ("POST", "/graphql/", "", "router"),
        ("POST", "/admin", "", "router"),
        ("POST", "/graphql", "/keyturn", "router"),
    ],
)
async def test_only_posts_to_the_path_go_straight_to_the_endpoint(
    method: str, path: str, root_path: str, taken: str
) -> None:
    seen: list[str] = []
    app = DirectRoute(Recorder("router", seen), "/graphql", Recorder("endpoint", seen))
    scope: dict[str, Any] = {"type": "http", "method": method, "path": path}
    if root_path:
        scope["root_path"] = root_path

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        pass

    await app(scope, receive, send)
    assert seen == [taken]


async def test_graphql_posts_answer_without_the_router(
    api: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    routed: list[str] = []
    router = api.app.router
    real = type(router).__call__

    async def counting(self: Any, scope: Scope, receive: Receive, send: Send) -> None:
        routed.append(scope["path"])
        await real(self, scope, receive, send)

    monkeypatch.setattr(type(router), "__call__", counting)
    answer = await api.gql("{ __typename }")
    assert answer.data == {"__typename": "Query"}
    # The layers outside still ran: the request id and the security headers are there.
    assert answer.response.headers["x-request-id"]
    assert answer.response.headers["x-content-type-options"] == "nosniff"
    got = await api.client.get("/graphql", params={"query": "{ __typename }"})
    assert got.json()["data"] == {"__typename": "Query"}
    assert routed == ["/graphql"]  # the GET only


async def test_an_unknown_path_still_answers_404(api: Harness) -> None:
    response = await api.client.post("/nowhere", content=b"{}")
    assert response.status_code == 404
