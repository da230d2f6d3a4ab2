"""What one request may ask for: depth, aliases, tokens, fragments, body size, literal sizes."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import httpx
from graphql import get_introspection_query, parse

from schema.documents import DocumentCache
from schema.limits import MAX_DEPTH, alias_count, auth_mutation_count, query_depth
from tests.conftest import Harness


def nested_introspection(levels: int) -> str:
    """`{ __schema { directives { args { type { fields { args ... { name } } } } } } }`: the
    `name` leaf sits `levels` fields deep. (No more than two `fields` up to depth 10, which
    graphql-core's own introspection rule allows.)"""
    path = ["__schema", "directives"] + ["args", "type", "fields"] * levels
    opening = " { ".join(path[:levels])
    return "{ " + opening + " { name }" + " }" * (levels - 1) + " }"


def test_depth_counts_fields_below_the_top_level() -> None:
    assert query_depth(parse("{ me { id } }")) == 1
    assert query_depth(parse("{ __typename }")) == 0
    assert query_depth(parse(nested_introspection(MAX_DEPTH))) == MAX_DEPTH
    assert query_depth(parse(nested_introspection(MAX_DEPTH + 1))) == MAX_DEPTH + 1


def test_depth_follows_fragments_once_each_and_survives_cycles() -> None:
    document = parse(
        "query { ...A } fragment A on Query { me { ...B } } "
        "fragment B on User { id ...A } "  # a cycle: refused elsewhere, harmless here
    )
    assert query_depth(document) == 1


def test_aliases_count_once_per_spread_without_expanding_each_one() -> None:
    spreads = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(40))
    document = parse(f"query {{ ...F0 }} {spreads} fragment F40 on Query {{ a: __typename }}")

    started = time.perf_counter()
    assert alias_count(document, 16) == 16  # 2**40 aliases, saturated at the ceiling
    assert query_depth(document) == 0
    assert time.perf_counter() - started < 0.1


def test_auth_mutations_are_counted_through_fragments_and_operations() -> None:
    login = 'login(input: {email: "a", password: "b"}) { accessToken }'
    assert auth_mutation_count(parse(f"mutation {{ {login} }}"), 2) == 1
    assert auth_mutation_count(parse(f"mutation {{ {login} logout }}"), 2) == 1
    assert auth_mutation_count(parse(f"mutation A {{ {login} }} mutation B {{ {login} }}"), 2) == 2
    assert (
        auth_mutation_count(
            parse(
                "mutation { refresh { accessToken } ...F } "
                f"fragment F on Mutation {{ {login} }}"
            ),
            2,
        )
        == 2
    )


async def test_the_depth_limit_applies_to_introspection(api: Harness) -> None:
    deep = await api.gql(nested_introspection(MAX_DEPTH + 1))
    assert set(deep.codes) == {"BAD_USER_INPUT"}
    assert f"at most {MAX_DEPTH} are allowed" in deep.errors[0]["message"]

    allowed = await api.gql(nested_introspection(MAX_DEPTH))
    assert not allowed.errors, allowed
    assert allowed.data["__schema"]["directives"]


async def test_the_standard_introspection_query_works_in_development(api: Harness) -> None:
    # GraphiQL sends this; its TypeRef fragment nests `ofType` nine deep.
    result = await api.gql(get_introspection_query(descriptions=True, type_depth=9))
    assert not result.errors, result.errors
    assert result.data["__schema"]["queryType"]["name"] == "Query"


async def test_at_most_fifteen_aliases(api: Harness) -> None:
    def aliases(count: int) -> str:
        return "{ " + " ".join(f"a{i}: __typename" for i in range(count)) + " }"

    assert not (await api.gql(aliases(15))).errors
    refused = await api.gql(aliases(16))
    assert refused.codes == ["BAD_USER_INPUT"]
    assert "more than 15 aliases" in refused.errors[0]["message"]

    through_fragment = await api.gql(
        "{ ...F ...G } fragment F on Query { a: __typename b: __typename c: __typename "
        "d: __typename } fragment G on Query { ...F ... on Query { ...F ...F } }"
    )
    assert through_fragment.codes == ["BAD_USER_INPUT"]


async def test_exponential_fragments_are_refused_quickly(api: Harness) -> None:
    spreads = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(60))
    started = time.perf_counter()
    result = await api.gql(f"{{ ...F0 }} {spreads} fragment F60 on Query {{ x: __typename }}")
    assert time.perf_counter() - started < 2
    assert "more than 15 aliases" in result.errors[0]["message"]


async def test_at_most_two_thousand_tokens(api: Harness) -> None:
    def listing(kinds: int) -> str:
        # 14 tokens around the list, one per string in it.
        strings = " ".join(['"x"'] * kinds)
        return f"{{ auditEvents(kinds: [{strings}]) {{ pageInfo {{ hasNextPage }} }} }}"

    refused = await api.gql(listing(1990))
    assert refused.codes == ["BAD_USER_INPUT"]
    assert "more than 2000 tokens" in refused.errors[0]["message"]
    # Parsed and run (and refused for want of a token, which is beside the point here).
    assert (await api.gql(listing(1980))).codes == ["UNAUTHENTICATED"]


async def test_fragment_cycles_are_refused(api: Harness) -> None:
    result = await api.gql(
        "{ ...A } fragment A on Query { ...B } fragment B on Query { __typename ...A }"
    )
    assert result.codes == ["BAD_USER_INPUT"]
    assert "Cannot spread fragment" in result.errors[0]["message"]


async def test_a_body_over_64_kb_is_refused_before_parsing(api: Harness) -> None:
    padding = "x" * (64 * 1024)
    response = await api.client.post(
        "/graphql", json={"query": "{ __typename }", "variables": {"pad": padding}}
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert response.headers["cache-control"] == "no-store"

    # Just under the limit is fine.
    response = await api.client.post(
        "/graphql", json={"query": "{ __typename }", "variables": {"pad": padding[:60_000]}}
    )
    assert response.status_code == 200


async def test_a_chunked_body_without_content_length_is_cut_off_too(api: Harness) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"query": "{ __typename }", "variables": {"pad": "'
        for _ in range(200):
            sent += 1
            yield b"x" * 1024
        yield b'"}}'

    response = await api.client.post(
        "/graphql", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert sent < 200  # stopped reading long before the end


async def test_malformed_bodies_get_clear_400s(api: Harness) -> None:
    bodies = {
        "not json": b"{nope",
        "not utf-8": b'{"query": "\xff\xfe"}',
        "a scalar": b"42",
        "null": b"null",
        "a huge integer": b'{"query": "{ __typename }", "variables": {"n": ' + b"9" * 5000 + b"}}",
        "nested too deep": b'{"query": "{ __typename }", "variables": {"a": '
        + b"[" * 20000
        + b"]" * 20000
        + b"}}",
    }
    # Plain JSON posts take the view's short path; the others (a streamed answer asked for, a
    # JSON media type spelled oddly) go through strawberry's: both refuse alike.
    paths = [
        {"Content-Type": "application/json"},
        {"Content-Type": "application/json; charset=utf-8"},
        {"Content-Type": "application/json", "Accept": "text/event-stream"},
        {"Content-Type": "application/json+x"},
    ]
    bodies |= {
        "a batch": b'[{"query": "{ __typename }"}]',
        "a query that is no string": b'{"query": 1}',
        "variables that are no object": b'{"query": "{ __typename }", "variables": [1]}',
        "extensions that are no object": b'{"query": "{ __typename }", "extensions": "x"}',
        "no query": b'{"variables": {}}',
        "an unpaired surrogate": b'{"query": "query ($s: String) { __typename }", '
        b'"variables": {"s": "\\ud800"}}',
        "an unpaired surrogate in the query": b'{"query": "{ __typename } # \\udfff"}',
    }
    for headers in paths:
        for name, body in bodies.items():
            response = await api.client.post("/graphql", content=body, headers=headers)
            assert response.status_code == 400, (name, headers, response.text)
            error = response.json()["errors"][0]
            assert error["extensions"]["code"] == "BAD_USER_INPUT", name
        fine = await api.client.post(
            "/graphql", content=b'{"query": "{ __typename }"}', headers=headers
        )
        assert fine.status_code == 200, (headers, fine.text)
        assert fine.json() == {"data": {"__typename": "Query"}}


async def test_variables_over_get_that_are_not_unicode_are_refused(api: Harness) -> None:
    response = await api.client.get(
        "/graphql",
        params={"query": "query ($s: String) { __typename }", "variables": '{"s": "\\ud800"}'},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_oversized_integers_are_bad_input(api: Harness, admin: object) -> None:
    token = (await api.login("admin@example.com"))["accessToken"]
    query = "query ($n: Int!) { users(first: $n) { totalCount } }"
    for literal in ("2147483648", "-99999999999999999999", "9" * 5000):
        result = await api.gql(f"{{ users(first: {literal}) {{ totalCount }} }}", token=token)
        assert result.codes == ["BAD_USER_INPUT"], literal
    for value in (2**31, 10**400, 1e300, "12"):
        result = await api.gql(query, {"n": value}, token=token)
        assert result.codes == ["BAD_USER_INPUT"], value
    assert (await api.gql(query, {"n": 0}, token=token)).codes == ["BAD_USER_INPUT"]


async def test_mutations_over_get_are_refused(api: Harness) -> None:
    response = await api.client.get("/graphql", params={"query": "mutation { logout }"})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_graphql_response_json_answers_unrun_documents_with_400(api: Harness) -> None:
    accept = {"Accept": "application/graphql-response+json, application/json;q=0.9"}

    async def post(query: str) -> httpx.Response:
        return await api.client.post("/graphql", json={"query": query}, headers=accept)

    for broken in ("{", "{ nope }", "query ($n: Int!) { __typename }"):
        response = await post(broken)
        assert response.status_code == 400, broken
        assert response.headers["content-type"].startswith("application/graphql-response+json")
        assert "data" not in response.json()
    ran = await post("{ me { id } }")  # ran, and failed in a field: 200 with data
    assert ran.status_code == 200
    assert ran.json()["data"] is None
    assert json.loads(ran.text)["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    plain = await api.client.post("/graphql", json={"query": "{ nope }"})
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("application/json")


def document_cache(api: Harness) -> DocumentCache:
    view = next(r.endpoint for r in api.app.routes if getattr(r, "path", "") == "/graphql")
    cache = view.schema.documents
    assert isinstance(cache, DocumentCache)
    return cache


async def test_the_document_cache_hits_with_the_limits_on(api: Harness) -> None:
    cache = document_cache(api)
    document = "{ __typename alias: __typename }"
    await api.gql(document)
    hits, misses = cache.hits, cache.misses
    for _ in range(3):
        assert not (await api.gql(document)).errors
    assert (cache.hits - hits, cache.misses - misses) == (3, 0)


async def test_a_refused_document_stays_refused_from_the_cache(api: Harness) -> None:
    cache = document_cache(api)
    deep = nested_introspection(MAX_DEPTH + 1)
    for _ in range(2):
        result = await api.gql(deep)
        assert set(result.codes) == {"BAD_USER_INPUT"}
        assert f"at most {MAX_DEPTH} are allowed" in result.errors[0]["message"]
    long_int = "{ users(first: 1" + "0" * 5000 + ") { totalCount } }"
    hits = cache.hits
    for _ in range(2):
        result = await api.gql(long_int)
        assert result.codes == ["BAD_USER_INPUT"]
        assert "out of range" in result.errors[0]["message"]
    assert cache.hits - hits == 1


async def test_the_document_cache_is_bounded_and_keeps_no_syntax_errors(api: Harness) -> None:
    cache = document_cache(api)
    for i in range(cache.maxsize + 20):
        await api.gql(f"{{ a{i}: __typename }}")
    for i in range(20):
        assert (await api.gql(f"{{ broken{i} ")).codes == ["BAD_USER_INPUT"]
    assert len(cache._entries) == cache.maxsize
    assert not any(text.startswith("{ broken") for text in cache._entries)
