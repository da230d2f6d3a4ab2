"""Production defaults: no introspection, GraphiQL or suggestions; masked errors; headers; CORS."""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import pickle
import re
import time
import uuid

import httpx
import pytest

from models import AuditEvent
from models.ids import BLOCK, RandomIds, SpelledUUID
from schema.types import User
from tests.conftest import AppFactory, Harness

APP = "https://app.example.com"
EVIL = "https://evil.example.net"
INTROSPECTION = "{ __schema { types { name } } }"
TYPOS = [
    ("{ mee { id } }", "Cannot query field 'mee'"),
    ('mutation { login(inpt: {email: "a", password: "b"}) { accessToken } }', "Unknown argument"),
    (
        'mutation { login(input: {emial: "a", password: "b"}) { accessToken } }',
        "unknown field 'emial'",
    ),
    (
        'mutation { login(input: {email: "a", password: "b", refreshTokenDelivery: COOKY})'
        " { accessToken } }",
        "COOKY",
    ),
    ("query ($d: RefreshTokenDeliveri) { __typename }", "Unknown type"),
]


@pytest.fixture
async def production(app_factory: AppFactory) -> Harness:
    return await app_factory(env="production")


async def test_production_refuses_introspection(production: Harness) -> None:
    refused = await production.gql(INTROSPECTION)
    assert set(refused.codes) == {"BAD_USER_INPUT"}
    assert "introspection" in refused.errors[0]["message"].lower()
    assert set((await production.gql('{ __type(name: "User") { name } }')).codes) == {
        "BAD_USER_INPUT"
    }
    # __typename is not introspection of the schema: clients rely on it.
    assert (await production.gql("{ __typename }")).data == {"__typename": "Query"}


async def test_production_serves_no_graphiql(production: Harness) -> None:
    response = await production.client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert "graphiql" not in response.text.lower()


async def test_production_gives_no_suggestions(production: Harness) -> None:
    for query, expected in TYPOS:
        result = await production.gql(query, {"d": "BODY"})
        assert result.codes, query
        message = " ".join(error["message"] for error in result.errors)
        assert expected in message, (query, message)
        assert "Did you mean" not in message, message
    coerced = await production.gql(
        "mutation ($d: RefreshTokenDelivery!) {"
        " refresh(refreshTokenDelivery: $d) { accessToken } }",
        {"d": "COOKY"},
    )
    assert "Did you mean" not in coerced.errors[0]["message"]


async def test_development_helps_with_introspection_and_suggestions(api: Harness) -> None:
    assert not (await api.gql(INTROSPECTION)).errors
    typo = await api.gql("{ mee { id } }")
    assert "Did you mean 'me'?" in typo.errors[0]["message"]


async def test_settings_can_turn_introspection_back_on_in_production(
    app_factory: AppFactory,
) -> None:
    api = await app_factory(env="production", introspection=True)
    assert not (await api.gql(INTROSPECTION)).errors
    assert "Did you mean" in (await api.gql("{ mee { id } }")).errors[0]["message"]


async def test_unexpected_errors_are_masked_with_the_request_id(
    api: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await api.create_user()
    token = (await api.login())["accessToken"]

    def broken(principal: object) -> None:
        raise RuntimeError(f"select-secret-from-vault; token={token}")

    monkeypatch.setattr(User, "from_principal", broken)
    with caplog.at_level(logging.INFO):
        result = await api.gql("{ me { id } }", token=token)

    assert result.codes == ["INTERNAL_SERVER_ERROR"]
    error = result.errors[0]
    assert error["message"] == "Unexpected error."
    assert "vault" not in result.response.text
    request_id = result.response.headers["x-request-id"]
    assert error["extensions"]["requestId"] == request_id
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert f"unexpected error (request {request_id})" in logged
    assert "RuntimeError" in logged
    # Its frames too: logged before the answered errors' tracebacks are dropped.
    assert ", in broken" in logged
    assert token not in logged


async def test_every_response_carries_a_fresh_request_id(api: Harness) -> None:
    seen = set()
    for _ in range(3):
        response = await api.client.post("/graphql", json={"query": "{ __typename }"})
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
        seen.add(response.headers["x-request-id"])
    assert len(seen) == 3
    assert (await api.client.get("/healthz")).headers["x-request-id"]


def test_random_ids_are_random_across_blocks_and_after_a_fork() -> None:
    ids = RandomIds()
    drawn = [ids.hex() for _ in range(3 * BLOCK // 16 + 5)]  # past several refills
    assert all(re.fullmatch(r"[0-9a-f]{32}", one) for one in drawn)
    assert len(set(drawn)) == len(drawn)
    uuids = [ids.uuid4() for _ in range(3 * BLOCK // 16 + 5)]
    assert all(one.version == 4 and one.variant == uuid.RFC_4122 for one in uuids)
    assert len({one.hex for one in uuids} | set(drawn)) == len(uuids) + len(drawn)
    # The other 122 bits are not fixed: each one is set in some of them and clear in others.
    varying = [one.int for one in uuids]
    fixed = {bit for bit in range(128) if len({(value >> bit) & 1 for value in varying}) == 1}
    assert fixed == {76, 77, 78, 79, 62, 63}, sorted(fixed)
    # A forked child must not hand out the ids its parent has yet to (the rest of the block).
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        os.write(write, ids.hex().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read) as pipe:
        from_child = pipe.read()
    assert re.fullmatch(r"[0-9a-f]{32}", from_child)
    assert from_child != ids.hex()
    assert from_child not in drawn


def test_ordered_ids_begin_with_the_time_and_are_random_after_it() -> None:
    ids = RandomIds()
    before = time.time_ns() // 1_000_000
    drawn = [ids.uuid7() for _ in range(2 * BLOCK // 16 + 5)]
    after = time.time_ns() // 1_000_000
    assert all(one.version == 7 and one.variant == uuid.RFC_4122 for one in drawn)
    assert all(before <= one.int >> 80 <= after for one in drawn)
    assert len({one.int for one in drawn}) == len(drawn)
    # The 74 bits after the time, the version and the variant vary; the time is the prefix, so
    # ids of later milliseconds sort after earlier ones, as text too.
    low = [one.int & ((1 << 76) - 1) for one in drawn]
    fixed = {bit for bit in range(76) if len({(value >> bit) & 1 for value in low}) == 1}
    assert fixed == {62, 63}, sorted(fixed)
    time.sleep(0.002)
    later = ids.uuid7()
    assert str(later) > max(str(one) for one in drawn)


def test_a_spelled_uuid_is_a_uuid_in_every_way_but_its_cost() -> None:
    text = "B0000000-0000-4000-8000-00000000002A"  # any form UUID accepts, spelled canonically
    plain = uuid.UUID(text)
    spelled = SpelledUUID(text)
    assert str(spelled) == str(plain) == text.lower()
    assert str(spelled) is str(spelled)  # spelled once, kept
    assert spelled == plain
    assert hash(spelled) == hash(plain)
    assert {spelled} == {plain}
    assert repr(spelled) == repr(plain)
    assert f"{spelled}" == f"{plain}"
    assert spelled.hex == plain.hex
    assert spelled.version == 4
    unpickled = pickle.loads(pickle.dumps(spelled))  # noqa: S301 (bytes pickled right here)
    for copied in (copy.copy(spelled), copy.deepcopy(spelled), unpickled):
        assert type(copied) is uuid.UUID
        assert copied == plain
    drawn = RandomIds().uuid4()
    assert type(drawn) is SpelledUUID
    assert str(drawn) == str(uuid.UUID(int=drawn.int))
    with pytest.raises(TypeError, match="immutable"):
        spelled.int = 1  # type: ignore[misc]


async def test_audit_events_are_keyed_in_the_order_they_happen(api: Harness) -> None:
    """Their ids are time-ordered (models/ids.py, uuid7): inserts go to the end of the key's
    index instead of to a random page of it."""
    await api.create_user()
    seen: list[uuid.UUID] = []
    for _ in range(3):
        await asyncio.sleep(0.002)  # a later millisecond
        await api.login()
        new = sorted(set(await AuditEvent.all().values_list("id", flat=True)) - set(seen))
        assert new
        assert all(one.version == 7 and (not seen or one > max(seen)) for one in new)
        seen += new


async def test_a_request_id_is_taken_only_from_a_trusted_proxy(app_factory: AppFactory) -> None:
    untrusted = await app_factory()
    response = await untrusted.client.get("/healthz", headers={"X-Request-ID": "upstream-id-1234"})
    assert response.headers["x-request-id"] != "upstream-id-1234"

    behind_proxy = await app_factory(trusted_proxies=["127.0.0.1"])
    response = await behind_proxy.client.get(
        "/healthz", headers={"X-Request-ID": "upstream-id-1234"}
    )
    assert response.headers["x-request-id"] == "upstream-id-1234"
    forged = await behind_proxy.client.get("/healthz", headers={"X-Request-ID": "bad id\n"})
    assert forged.headers["x-request-id"] != "bad id\n"


async def test_security_headers_are_on_every_answer(api: Harness) -> None:
    for response in (
        await api.client.post("/graphql", json={"query": "{ __typename }"}),
        await api.client.post("/graphql", json=[{"query": "{ __typename }"}]),
        await api.client.post("/graphql", content=b"x" * 70_000),
        await api.client.get("/healthz"),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["strict-transport-security"].startswith("max-age=")
    graphql = await api.client.post("/graphql", json=[{"query": "{ __typename }"}])
    assert graphql.headers["cache-control"] == "no-store"


async def test_no_hsts_when_cookies_are_not_secure(app_factory: AppFactory) -> None:
    api = await app_factory(cookie_secure=False)
    response = await api.client.get("/healthz")
    assert "strict-transport-security" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


def preflight(origin: str, method: str = "POST", headers: str = "content-type") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


async def test_cors_answers_only_the_configured_origins(app_factory: AppFactory) -> None:
    api = await app_factory(cors_origins=[APP])

    allowed = await api.client.options("/graphql", headers=preflight(APP, headers="authorization"))
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == APP
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert allowed.headers["vary"] == "Origin"

    for refused in (
        await api.client.options("/graphql", headers=preflight(EVIL)),
        await api.client.options("/graphql", headers=preflight("null")),
        await api.client.options("/graphql", headers=preflight(APP, method="DELETE")),
        await api.client.options("/graphql", headers=preflight(APP, headers="x-custom")),
        await api.client.options("/graphql", headers=preflight(APP + ".evil.net")),
    ):
        assert refused.status_code == 400
        assert cors_headers(refused) == {}

    simple = await api.client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Origin": APP}
    )
    assert simple.headers["access-control-allow-origin"] == APP
    assert simple.headers["access-control-allow-credentials"] == "true"
    assert simple.headers["access-control-expose-headers"] == "X-Request-ID"
    assert "Origin" in simple.headers["vary"]

    foreign = await api.client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Origin": EVIL}
    )
    assert foreign.status_code == 200
    assert cors_headers(foreign) == {}
    no_origin = await api.client.post("/graphql", json={"query": "{ __typename }"})
    assert cors_headers(no_origin) == {}


async def test_cors_never_answers_with_a_wildcard(app_factory: AppFactory) -> None:
    api = await app_factory(cors_origins=[APP])
    for origin in (APP, EVIL, "*"):
        response = await api.client.post(
            "/graphql", json={"query": "{ __typename }"}, headers={"Origin": origin}
        )
        assert response.headers.get("access-control-allow-origin") != "*"
