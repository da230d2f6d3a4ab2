"""Fields that graphql-core resolves by calling their Python function itself.

For every field with a resolver, strawberry installs a wrapper that runs on each call: it finds
each argument's Python name by converting its GraphQL name again, converts each value (for a
scalar or an enum, which graphql-core has already parsed, that returns the value as it is),
chains the field's extensions, and awaits the resolver's coroutine inside one of its own. For a
field with no extension (permission classes are one), no exception handler and only scalar and
enum arguments, all of that comes down to renaming the arguments and handing over an `Info`:
`resolve_directly` installs that, worked out once per field. On a refresh the wrapper cost
about 25 µs of the event loop's 290 (docs/performance.md, eighteenth round); every other field
keeps strawberry's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry
from graphql import GraphQLObjectType, GraphQLResolveInfo
from strawberry.relay.types import GlobalID
from strawberry.scalars import is_scalar
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import StrawberryArgument
from strawberry.types.base import StrawberryMaybe, StrawberryOptional, StrawberryType
from strawberry.types.enum import StrawberryEnumDefinition, has_enum_definition
from strawberry.types.field import StrawberryField

Resolver = Callable[..., Any]


def resolve_directly(schema: strawberry.Schema) -> tuple[str, ...]:
    """Installs a direct resolver on each field that qualifies; their `Type.field` names.

    A schema with exception handlers keeps strawberry's resolvers throughout: it is the wrapper
    that applies them.
    """
    converter = schema.schema_converter
    if getattr(converter, "_exception_handler_specs", ()) != ():
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
    return (
        resolver is not None
        and callable(resolver.wrapped_func)  # a descriptor not bound: strawberry's error
        and not field.extensions
        and resolver.parent_parameter is None
        and resolver.root_parameter is None
        and all(_is_leaf(schema, argument) for argument in field.arguments)
    )


def _is_leaf(schema: strawberry.Schema, argument: StrawberryArgument) -> bool:
    """A scalar or an enum, or null: values that strawberry's conversion returns unchanged."""
    kind: StrawberryType | type = argument.type
    if isinstance(kind, StrawberryMaybe):
        return False  # wrapped in Some() by the conversion
    if isinstance(kind, StrawberryOptional):
        kind = kind.of_type
    if kind is GlobalID:
        return False  # decoded from its text by the conversion
    if isinstance(kind, StrawberryEnumDefinition) or has_enum_definition(kind):
        return True
    return is_scalar(kind, schema.schema_converter.scalar_registry)


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

    def resolve(source: Any, info: GraphQLResolveInfo[Any], **arguments: Any) -> Any:
        kwargs = {renamed[name]: value for name, value in arguments.items()}
        if info_parameter is not None:
            kwargs[info_parameter] = info_class(_raw_info=info, _field=field)
        return function(source, **kwargs) if takes_self else function(**kwargs)

    resolve._is_default = False  # type: ignore[attr-defined]  # as strawberry marks its own
    return resolve
