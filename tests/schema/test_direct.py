"""Fields resolved directly (schema/direct.py) answer exactly as strawberry's own wrapper does,
extensions and permissions included, and only the fields where that wrapper has nothing else to
do are resolved that way."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from typing import Any

import pytest
import strawberry
from strawberry.extensions import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.relay import GlobalID
from strawberry.schema.exception_handlers import ExceptionHandler

import schema
from schema import KeyturnSchema, Mutation, Query


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.input
class Shape:
    sides: int


class Never(BasePermission):
    message = "never"

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        return False


class OnlyForMe(BasePermission):
    """Async, as Keyturn's are; refuses by raising, or by answering False, or wrongly."""

    message = "not you"
    error_extensions = {"code": "FORBIDDEN"}

    async def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        who = info.context["who"]
        info.context["seen"] = kwargs
        if who == "raise":
            raise ValueError("raised")
        if who == "odd":
            return "yes"  # type: ignore[return-value]
        return bool(who == "me" and kwargs.get("text") != "no")


class Shout(FieldExtension):
    """Changes the answer, after the resolver: part of the resolving chain only."""

    async def resolve_async(self, next_: Any, source: Any, info: strawberry.Info, **kwargs: Any):
        return (await next_(source, info, **kwargs)).upper()


class Rename(FieldExtension):
    """Reshapes the arguments, which strawberry does in its conversion: not direct."""

    def map_arguments(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {"text": f"renamed {kwargs.get('text')}"}

    async def resolve_async(self, next_: Any, source: Any, info: strawberry.Info, **kwargs: Any):
        return await next_(source, info, **kwargs)


@strawberry.type
class Leaf:
    n: int

    @strawberry.field
    def doubled(self) -> int:
        return self.n * 2

    @strawberry.field
    def plus(self, by: int = 1) -> int:
        return self.n + by


@strawberry.type
class Toy:
    @strawberry.field
    async def echo(
        self,
        info: strawberry.Info,
        text: str | None = strawberry.UNSET,
        colour: Colour | None = strawberry.UNSET,
        picked: Colour = Colour.BLUE,
        some_id: strawberry.ID | None = None,
    ) -> str:
        # What the resolver was handed, all of it in the answer: an assertion here would fail
        # both ways alike and compare equal.
        seen = (text, colour, picked, some_id, type(info).__name__, info.field_name)
        return repr((*seen, info.python_name, info.context["who"], info.path.key))

    @strawberry.field
    def plain(self, count: int) -> int:
        return count + 1

    @strawberry.field
    def leaf(self, n: int) -> Leaf:
        return Leaf(n=n)

    @strawberry.field
    def area(self, shape: Shape) -> int:
        return shape.sides

    @strawberry.field
    def many(self, values: list[int]) -> int:
        return sum(values)

    @strawberry.field
    def node(self, id: GlobalID) -> str:
        return f"{id.type_name}:{id.node_id}"

    @strawberry.field(permission_classes=[Never])
    def guarded(self, text: str) -> str:
        return text

    @strawberry.field
    async def fails(self, text: str) -> str:
        raise ValueError(f"no {text}")

    @strawberry.field(permission_classes=[OnlyForMe])
    async def mine(self, info: strawberry.Info, text: str | None = None) -> str:
        return f"{info.context['who']} {text}"

    @strawberry.field(permission_classes=[OnlyForMe], extensions=[Shout()])
    async def loud(self, text: str) -> str:
        return text

    @strawberry.field(extensions=[PermissionExtension([OnlyForMe()], fail_silently=True)])
    async def quiet(self, text: str) -> str | None:
        return text

    @strawberry.field(extensions=[Rename()])
    async def renamed(self, text: str) -> str:
        return text

    @strawberry.field(permission_classes=[OnlyForMe])
    async def other_info(self, inf: strawberry.Info, text: str) -> str:
        return f"{inf.field_name} {text}"


DOCUMENTS: list[tuple[str, dict[str, Any] | None]] = [
    ("{ echo }", None),
    ('{ echo(text: "a", colour: RED) }', None),
    ("{ echo(text: null, colour: null, someId: 7) }", None),
    ("query ($t: String, $c: Colour) { echo(text: $t, colour: $c, picked: RED) }", None),
    ("query ($t: String, $c: Colour) { echo(text: $t, colour: $c) }", {"t": "b", "c": "BLUE"}),
    ("query ($t: String) { echo(text: $t) }", {"t": None}),
    ('{ a: echo(text: "x") b: echo(colour: BLUE) }', None),
    ("{ plain(count: 4) leaf(n: 3) { n doubled plus plus3: plus(by: 3) } }", None),
    ("{ area(shape: { sides: 5 }) many(values: [1, 2]) }", None),
    ('{ node(id: "VG95OjE=") }', None),
    ('{ node(id: "not a global id") }', None),
    ('{ guarded(text: "x") }', None),
    ('{ fails(text: "x") }', None),
    ('{ echo(colour: "RED") }', None),
    ("query ($c: Colour) { echo(colour: $c) }", {"c": "GREEN"}),
    ('{ mine(text: "a") loud(text: "b") quiet(text: "c") renamed(text: "d") }', None),
    ('{ mine(text: "no") loud(text: "no") quiet(text: "no") }', None),
    ("{ mine }", None),
    ('{ otherInfo(text: "a") }', None),
]


def outcome(result: Any) -> tuple[Any, list[tuple[str, Any, Any]]]:
    errors = [(e.message, e.path, e.extensions) for e in result.errors or ()]
    return result.data, errors


@pytest.mark.parametrize("who", ["me", "you", "raise", "odd"])
@pytest.mark.parametrize(("document", "variables"), DOCUMENTS)
async def test_a_field_answers_as_strawberrys_own_resolver_does(
    document: str, variables: dict[str, Any] | None, who: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    direct = KeyturnSchema(query=Toy)
    with monkeypatch.context() as patched:
        patched.setattr(schema, "resolve_directly", lambda _: ())
        stock = KeyturnSchema(query=Toy)
    assert stock.direct_fields == ()
    assert "Toy.echo" in direct.direct_fields  # else this compares strawberry with itself
    context = {"who": who}
    expected = await stock.execute(document, variables, context_value=context)
    got = await direct.execute(document, variables, context_value=context)
    assert outcome(got) == outcome(expected)


async def test_the_resolver_is_handed_what_strawberry_hands_it() -> None:
    result = await KeyturnSchema(query=Toy).execute(
        '{ echo(text: "a", colour: RED) }', context_value={"who": "me"}
    )
    assert result.data == {
        "echo": repr(("a", Colour.RED, Colour.BLUE, None, "Info", "echo", "echo", "me", "echo"))
    }
    result = await KeyturnSchema(query=Toy).execute("{ echo }", context_value={"who": "me"})
    assert result.data is not None
    assert result.data["echo"].startswith("(UNSET, UNSET, ")


async def test_a_permission_sees_the_arguments_by_their_python_names() -> None:
    context: dict[str, Any] = {"who": "me"}
    result = await KeyturnSchema(query=Toy).execute('{ mine(text: "a") }', context_value=context)
    assert result.data == {"mine": "me a"}
    assert context["seen"] == {"text": "a"}


def test_only_fields_whose_wrapper_does_nothing_else_are_resolved_directly() -> None:
    direct = KeyturnSchema(query=Toy).direct_fields
    # Not: an input object (area), a list (many), a GlobalID (node), an extension that reshapes
    # the arguments (renamed), extensions with `info` under another name (other_info, where
    # strawberry hands it to them among the arguments). Leaf.n has no resolver, and keeps
    # strawberry's own shortcut for plain attributes.
    assert set(direct) == {
        "Toy.echo",
        "Toy.plain",
        "Toy.leaf",
        "Toy.fails",
        "Toy.guarded",
        "Toy.mine",
        "Toy.loud",
        "Toy.quiet",
        "Leaf.doubled",
        "Leaf.plus",
    }


def test_keyturns_hot_fields_are_resolved_directly() -> None:
    keyturn = KeyturnSchema(query=Query, mutation=Mutation)
    hot = {"Query.me", "Query.mySessions", "Mutation.refresh", "Mutation.revokeSession"}
    assert hot <= set(keyturn.direct_fields)
    mutations = keyturn._schema.mutation_type
    assert mutations is not None
    assert mutations.fields["refresh"].resolve.__module__ == "schema.direct"
    assert keyturn._schema.query_type.fields["me"].resolve.__module__ == "schema.direct"
    # An input object is converted by strawberry's wrapper.
    assert "Mutation.login" not in keyturn.direct_fields


@strawberry.type
class Failed:
    reason: str


@strawberry.type
class Done:
    text: str


@strawberry.type
class WithUnion:
    @strawberry.field
    def attempt(self, text: str) -> Done | Failed:
        raise ValueError(text)


class Handler(ExceptionHandler[ValueError, Failed]):
    def handle(self, exc: ValueError, **kwargs: Any) -> Failed:
        return Failed(reason=str(exc))


@strawberry.type
class Ticks:
    @strawberry.subscription
    async def ticks(self, upto: int) -> AsyncIterator[int]:
        for tick in range(upto):
            yield tick


async def test_a_subscription_keeps_strawberrys_resolver() -> None:
    ticking = KeyturnSchema(query=Toy, subscription=Ticks)
    assert "Ticks.ticks" not in ticking.direct_fields
    assert "Toy.echo" in ticking.direct_fields
    stream = await ticking.subscribe("subscription { ticks(upto: 2) }")
    assert [result.data async for result in stream] == [{"ticks": 0}, {"ticks": 1}]


def test_a_schema_with_exception_handlers_keeps_strawberrys_resolvers() -> None:
    handled = KeyturnSchema(query=WithUnion, exception_handlers=[Handler()])
    assert handled.direct_fields == ()
    result = handled.execute_sync('{ attempt(text: "x") { ... on Failed { reason } } }')
    assert result.data == {"attempt": {"reason": "x"}}
