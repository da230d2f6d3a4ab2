"""The GraphQL schema, assembled from the per-area query and mutation types."""

from __future__ import annotations

from collections.abc import Callable

import strawberry
from graphql.error import GraphQLError
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.extensions import AddValidationRules, ParserCache, SchemaExtension, ValidationCache
from strawberry.extensions.query_depth_limiter import create_validator
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from api.settings import Settings
from schema.admin import AdminMutation, AdminQuery
from schema.auth import AuthMutation, AuthQuery
from schema.errors import ContractErrors

MAX_QUERY_DEPTH = 10


@strawberry.type
class Query(AuthQuery, AdminQuery):
    pass


@strawberry.type
class Mutation(AuthMutation, AdminMutation):
    pass


class KeyturnSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # ContractErrors logs what is unexpected, once; expected denials are not errors.
        return None


def validation_rules(settings: Settings) -> list[type[ASTValidationRule]]:
    """Built once per schema: the validation cache keys on these very classes."""
    rules: list[type[ASTValidationRule]] = [create_validator(MAX_QUERY_DEPTH, None)]
    if not settings.introspection_enabled:
        rules.append(NoSchemaIntrospectionCustomRule)
    return rules


def build_schema(settings: Settings) -> strawberry.Schema:
    rules = validation_rules(settings)
    extensions: list[Callable[[], SchemaExtension] | type[SchemaExtension]] = [
        ContractErrors,
        lambda: AddValidationRules(rules),
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
    ]
    return KeyturnSchema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=settings.is_production),
    )


def sdl() -> str:
    return str(KeyturnSchema(query=Query, mutation=Mutation))


__all__ = ["build_schema", "sdl"]
