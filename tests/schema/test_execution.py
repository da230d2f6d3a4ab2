"""A request's objects are freed when it is answered, not left to the cycle collector
(schema/execution.py; a refused one's too: schema/errors.py, drop_tracebacks), and the
resolvers' async helpers still work."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from typing import Any

import pytest
import strawberry
from graphql import GraphQLError, GraphQLResolveInfo

from schema import KeyturnSchema
from schema.errors import drop_tracebacks
from tests.conftest import Harness

REFRESH = (
    "mutation ($t: String) { refresh(refreshToken: $t, refreshTokenDelivery: BODY) "
    "{ accessToken refreshToken } }"
)


async def asgi_post(app: Any, body: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    """A GraphQL POST straight into the ASGI app: no HTTP client whose own objects would blur
    what the request left behind."""
    headers = [(b"host", b"test"), (b"content-type", b"application/json")]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("test", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[0]["status"] == 200
    answer: dict[str, Any] = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    return answer


@pytest.fixture
def collector_off() -> Iterator[None]:
    """No automatic collection: what the requests leave stays until collected here."""
    gc.disable()
    try:
        yield
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.collect()
        gc.enable()


def left_for_the_collector() -> set[str]:
    """The types of what a collection now finds unreachable (kept, not freed, to be named)."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    gc.set_debug(0)
    left = {type(o).__name__ for o in gc.garbage}
    gc.garbage.clear()
    return left


async def test_a_request_leaves_nothing_for_the_cycle_collector(
    api: Harness, user: object, collector_off: None
) -> None:
    tokens = await api.login()
    for _ in range(2):  # every cache warm: what stays is the requests' own
        me = await asgi_post(api.app, {"query": "{ me { id email } }"}, tokens["accessToken"])
        rotated = await asgi_post(
            api.app, {"query": REFRESH, "variables": {"t": tokens["refreshToken"]}}
        )
        tokens = rotated["data"]["refresh"]
    await asyncio.sleep(0.05)  # the commits' callbacks and the access checks' re-reads are done
    gc.collect()  # what the login and the HTTP client left

    me = await asgi_post(api.app, {"query": "{ me { id email } }"}, tokens["accessToken"])
    rotated = await asgi_post(
        api.app, {"query": REFRESH, "variables": {"t": tokens["refreshToken"]}}
    )
    await asyncio.sleep(0.05)

    assert me["data"]["me"]["email"] == "user@example.com"
    assert rotated["data"]["refresh"]["refreshToken"] != tokens["refreshToken"]
    left = left_for_the_collector()
    # The executor held the context, the request and everything they reach.
    assert not left & {"KeyturnExecutionContext", "Context", "Request", "Response"}, sorted(left)


REFUSED = {
    "no token": ({"query": "{ me { id email } }"}, None, "UNAUTHENTICATED"),
    "a forged token": ({"query": "{ me { id email } }"}, "e30.e30.forged", "UNAUTHENTICATED"),
    "a bad refresh token": (
        {"query": REFRESH, "variables": {"t": "not-a-token"}},
        None,
        "INVALID_REFRESH_TOKEN",
    ),
    "a user asking for an admin's query": (
        {"query": "{ users(first: 1) { edges { node { id } } } }"},
        "user",
        "FORBIDDEN",
    ),
}


@pytest.mark.parametrize("case", REFUSED)
async def test_a_refused_request_leaves_nothing_for_the_cycle_collector(
    api: Harness, user: object, collector_off: None, case: str
) -> None:
    # A raised error's traceback holds the frames it passed through, which hold the context
    # (and a failed access check's shared future), which holds the error: a flood of bad
    # tokens would feed the collector a hundred objects a request.
    body, token, code = REFUSED[case]
    if token == "user":
        token = (await api.login())["accessToken"]
    for _ in range(2):  # every cache warm: what stays is the requests' own
        await asgi_post(api.app, body, token)
    await asyncio.sleep(0.05)
    gc.collect()

    answer = await asgi_post(api.app, body, token)
    await asyncio.sleep(0.05)

    assert [e["extensions"]["code"] for e in answer["errors"]] == [code]
    left = left_for_the_collector()
    assert not left & {"Context", "Request", "Response", "traceback", "frame"}, sorted(left)


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_drop_tracebacks_follows_every_chained_exception() -> None:
    cause, context = raised(KeyError("cause")), raised(ValueError("context"))
    original = raised(RuntimeError("original"))
    original.__cause__, original.__context__ = cause, context
    context.__context__ = original  # a loop in the chain ends the walk, not the process
    error = raised(GraphQLError("answered", original_error=original))

    drop_tracebacks(error)

    chain = (error, original, cause, context)
    assert all(exc.__traceback__ is None for exc in chain)


TRACKED: list[int] = []


@strawberry.type
class Numbers:
    @strawberry.field
    async def both(self, info: strawberry.Info) -> list[int]:
        raw: GraphQLResolveInfo = info._raw_info

        async def number(n: int) -> int:
            await asyncio.sleep(0)
            return n

        async def noted(n: int) -> None:
            await asyncio.sleep(0)
            TRACKED.append(n)

        raw.async_helpers.track([noted(3), 4])  # the executor settles what is awaitable
        gathered: list[int] = await raw.async_helpers.gather([number(1), number(2)])
        return gathered


async def test_resolvers_still_gather_and_track_async_work() -> None:
    schema = KeyturnSchema(query=Numbers)
    TRACKED.clear()

    result = await schema.execute("{ both }")
    for _ in range(3):
        await asyncio.sleep(0)  # work tracked in the background settles

    assert result.errors is None
    assert result.data == {"both": [1, 2]}
    assert TRACKED == [3]
