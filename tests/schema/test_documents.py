"""A document seen before runs on a short path past strawberry's per-request machinery
(schema/__init__.py): it must answer exactly as the whole path answered it the first time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import strawberry
from strawberry.extensions import SchemaExtension

from schema import KeyturnSchema, Query
from schema.documents import CachedDocuments, DocumentCache
from tests.conftest import Harness

GRAPHQL_RESPONSE = {"Accept": "application/graphql-response+json, application/json;q=0.9"}


@pytest.fixture
def whole_path_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times strawberry's own `execute` built its extensions runner."""
    runs: list[int] = []
    build = KeyturnSchema.create_extensions_runner

    def counted(self: KeyturnSchema, *args: Any, **kwargs: Any) -> Any:
        runs.append(1)
        return build(self, *args, **kwargs)

    monkeypatch.setattr(KeyturnSchema, "create_extensions_runner", counted)
    return runs


def answer(response: httpx.Response) -> tuple[int, str, Any]:
    return response.status_code, response.headers["content-type"], response.json()


async def twice(api: Harness, runs: list[int], body: dict[str, Any], **options: Any) -> Any:
    """`body` posted twice: the whole path the first time, the short one the second."""
    before = len(runs)
    first = answer(await api.client.post("/graphql", json=body, **options))
    middle = len(runs)
    second = answer(await api.client.post("/graphql", json=body, **options))
    assert (middle - before, len(runs) - middle) == (1, 0), body
    assert second == first, body
    return first


async def test_a_known_document_answers_as_it_did_the_first_time(
    api: Harness, user: object, whole_path_runs: list[int]
) -> None:
    token = (await api.login())["accessToken"]
    bearer = {"Authorization": f"Bearer {token}"}
    status, _, body = await twice(
        api, whole_path_runs, {"query": "{ me { email role } }"}, headers=bearer
    )
    assert (status, body) == (200, {"data": {"me": {"email": "user@example.com", "role": "USER"}}})

    # A field's failure: data null and the contract code, on both paths.
    status, _, body = await twice(api, whole_path_runs, {"query": "{ me { id } }"})
    assert status == 200
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]

    # Denied by role.
    _, _, body = await twice(
        api, whole_path_runs, {"query": "{ users(first: 2) { totalCount } }"}, headers=bearer
    )
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]


@pytest.mark.parametrize("accept", [{}, GRAPHQL_RESPONSE], ids=["json", "graphql-response"])
async def test_refusals_before_any_field_runs_are_the_same_on_both_paths(
    api: Harness, whole_path_runs: list[int], accept: dict[str, str]
) -> None:
    query = "query ($n: Int!) { users(first: $n) { totalCount } }"
    cases: list[dict[str, Any]] = [
        {"query": query},  # a variable missing
        {"query": query, "variables": {"n": "ten"}},  # of the wrong type
        {"query": query, "variables": {"n": 10**40}},  # out of range
    ]
    for number, case in enumerate(cases):
        case["query"] += f" # case {number}"  # a text of its own: new to the cache
        status, content_type, body = await twice(api, whole_path_runs, case, headers=accept)
        assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"], case
        if accept:
            assert (status, "data" in body) == (400, False), case
            assert content_type.startswith("application/graphql-response+json")
        else:
            # Nothing ran, so no `data` (GraphQL spec, "Response"), under either media type.
            assert (status, "data" in body) == (200, False), case


async def test_a_named_operation_runs_on_the_short_path_and_an_unknown_name_never_does(
    api: Harness, whole_path_runs: list[int]
) -> None:
    query = "query A { a: __typename } query B { b: __typename }"
    _, _, body = await twice(api, whole_path_runs, {"query": query, "operationName": "B"})
    assert body == {"data": {"b": "Query"}}
    # No name asked for, among two: refused, as GraphQL's GetOperation says (strawberry ran
    # the first operation, and so did the short path), on the whole path every time.
    before = len(whole_path_runs)
    for _ in range(2):
        response = await api.client.post("/graphql", json={"query": query})
        assert "data" not in response.json()
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert error["message"] == (
            "Must provide operation name if query contains multiple operations."
        )
    assert len(whole_path_runs) - before == 2
    # A text never seen before is refused too, and one operation needs no name.
    fresh = await api.client.post("/graphql", json={"query": query + " # fresh"})
    assert fresh.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    _, _, body = await twice(api, whole_path_runs, {"query": "query A { a: __typename }"})
    assert body == {"data": {"a": "Query"}}

    before = len(whole_path_runs)
    for _ in range(2):
        response = await api.client.post("/graphql", json={"query": query, "operationName": "C"})
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert len(whole_path_runs) - before == 2


async def test_a_mutation_over_get_is_refused_even_when_its_text_is_known(
    api: Harness, user: object, whole_path_runs: list[int]
) -> None:
    mutation = "mutation { logout }"
    token = (await api.login())["accessToken"]
    await api.gql(mutation, token=token)  # known now, and valid
    for _ in range(2):
        response = await api.client.get("/graphql", params={"query": mutation})
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"


async def test_a_schema_with_another_extension_always_takes_the_whole_path() -> None:
    class Counting(SchemaExtension):
        seen: list[str] = []

        def on_execute(self) -> Iterator[None]:
            Counting.seen.append("execute")
            yield

    @strawberry.type
    class Small:
        @strawberry.field
        def hello(self) -> str:
            return "hi"

    documents = DocumentCache([])
    schema = KeyturnSchema(
        query=Small, extensions=[lambda: CachedDocuments(documents), Counting], documents=documents
    )
    for _ in range(3):
        assert (await schema.execute("{ hello }")).data == {"hello": "hi"}
    assert Counting.seen == ["execute"] * 3

    lean = KeyturnSchema(
        query=Query, extensions=[lambda: CachedDocuments(documents)], documents=documents
    )
    assert (await lean.execute("{ __typename }")).data == {"__typename": "Query"}
    hits = documents.hits
    assert (await lean.execute("{ __typename }")).data == {"__typename": "Query"}
    assert documents.hits == hits + 1
