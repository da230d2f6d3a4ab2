"""Fields that graphql-core resolves through a wrapper worked out once per field.

For every field with a resolver, strawberry installs a wrapper that, on each call, finds each
argument's Python name by converting its GraphQL name again, converts each value (for a scalar or
an enum, which graphql-core has already parsed, that returns the value as it is), chains the
field's extensions anew, and awaits the resolver's coroutine inside one of its own. For a field
whose arguments are all scalars and enums, whose extensions (permission classes are one) only
take part in resolving, and with no exception handler, all of that comes down to renaming the
arguments, handing over an `Info`, and calling the same extension chain: `resolve_directly`
installs that, built once per field, with the extensions' own `resolve` or `resolve_async` as
strawberry picks them. A refresh's wrapper cost about 25 µs of the event loop's 290, and a
`me`'s about 4 of 100 (docs/performance.md, eighteenth round). Every other field keeps
strawberry's own.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial, reduce
from typing import Any

import strawberry
from graphql import GraphQLObjectType, GraphQLResolveInfo
from strawberry.extensions.field_extension import FieldExtension, build_field_extension_resolvers
from strawberry.relay.types import GlobalID
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import StrawberryArgument, _is_leaf_type
from strawberry.types.base import StrawberryMaybe, StrawberryOptional, StrawberryType
from strawberry.types.field import StrawberryField

Resolver = Callable[..., Any]


def resolve_directly(schema: strawberry.Schema) -> tuple[str, ...]:
    """Installs a direct resolver on each field that qualifies; their `Type.field` names.

    A schema with exception handlers keeps strawberry's resolvers throughout: it is the wrapper
    that applies them.
    """
    if getattr(schema, "exception_handlers", ()):
        return ()
    direct = []
    for graphql_type in schema._schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType) or graphql_type.name.startswith("__"):
            continue
        for name, graphql_field in graphql_type.fields.items():
            field = graphql_field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if not isinstance(field, StrawberryField) or not _qualifies(schema, field):
                continue
            graphql_field.resolve = _direct_resolver(schema, field)
            direct.append(f"{graphql_type.name}.{name}")
    return tuple(sorted(direct))


def _qualifies(schema: strawberry.Schema, field: StrawberryField) -> bool:
    resolver = field.base_resolver
    if resolver is None or not callable(resolver.wrapped_func):  # unbound: strawberry's error
        return False
    if field.is_subscription:
        return False  # graphql-core subscribes to these; strawberry's wrapper stays
    if field.extensions:
        info = resolver.info_parameter
        # strawberry hands the extensions `info` apart from the arguments only under that name.
        if info is not None and info.name != "info":
            return False
        # An extension that reshapes the arguments does so in strawberry's conversion.
        if any(type(e).map_arguments is not FieldExtension.map_arguments for e in field.extensions):
            return False
    return (
        resolver.parent_parameter is None
        and resolver.root_parameter is None
        and all(_is_leaf(schema, argument) for argument in field.arguments)
    )


def _is_leaf(schema: strawberry.Schema, argument: StrawberryArgument) -> bool:
    """A scalar or an enum, or null: values that strawberry's conversion returns unchanged,
    by the conversion's own test of a leaf (a GlobalID is decoded from its text, a Maybe
    wrapped in Some())."""
    kind: StrawberryType | type = argument.type
    if isinstance(kind, StrawberryMaybe):
        return False
    if isinstance(kind, StrawberryOptional):
        kind = kind.of_type
    registry = schema.schema_converter.scalar_registry
    return _is_leaf_type(kind, registry, skip_classes=(GlobalID,))


def _direct_resolver(schema: strawberry.Schema, field: StrawberryField) -> Resolver:
    resolver = field.base_resolver
    assert resolver is not None
    function = resolver.wrapped_func
    assert callable(function)
    name_converter = schema.config.name_converter
    # GraphQL argument name -> the function's parameter: graphql-core passes only the arguments
    # given or defaulted, and a missing one is left to the function's own default (UNSET).
    renamed = {
        name_converter.from_argument(argument): argument.python_name for argument in field.arguments
    }
    info_class = schema.config.info_class
    info_parameter = resolver.info_parameter.name if resolver.info_parameter else None
    takes_self = resolver.self_parameter is not None

    def call(source: Any, info: strawberry.Info, **kwargs: Any) -> Any:
        if info_parameter is not None:
            kwargs[info_parameter] = info
        return function(source, **kwargs) if takes_self else function(**kwargs)

    # The extensions' chain as strawberry builds it on every call: the first wraps the rest.
    chain = reduce(
        lambda chained, next_extension: partial(next_extension, chained),
        build_field_extension_resolvers(field) if field.extensions else (),
        call,
    )

    def resolve(source: Any, info: GraphQLResolveInfo[Any], **arguments: Any) -> Any:
        kwargs = {renamed[name]: value for name, value in arguments.items()}
        return chain(source, info_class(_raw_info=info, _field=field), **kwargs)

    resolve._is_default = False  # type: ignore[attr-defined]  # as strawberry marks its own
    return resolve
