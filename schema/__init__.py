"""The GraphQL schema, assembled from the per-area query and mutation types."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import strawberry
from graphql.error import GraphQLError
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from api.settings import Settings
from schema.admin import AdminMutation, AdminQuery
from schema.auth import AuthMutation, AuthQuery
from schema.documents import CachedDocuments, DocumentCache
from schema.errors import contract_error
from schema.limits import DOCUMENT_RULES, MAX_DEPTH

MAX_QUERY_DEPTH = MAX_DEPTH


@strawberry.type
class Query(AuthQuery, AdminQuery):
    pass


@strawberry.type
class Mutation(AuthMutation, AdminMutation):
    pass


class KeyturnSchema(strawberry.Schema):
    """Every result leaves through `contract_error`, whichever path produced it.

    Done here rather than in an extension: strawberry answers a syntax error found by the parser
    cache, or an exception inside an extension, outside of the extensions' own hooks.
    """

    def __init__(
        self,
        *args: Any,
        suggestions: bool = True,
        documents: DocumentCache | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.suggestions = suggestions
        self.documents = documents

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        result = await super().execute(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed_operation_types,
            operation_extensions,
        )
        if result.errors:
            request_id = getattr(context_value, "request_id", None)
            result.errors = [
                contract_error(error, request_id, suggestions=self.suggestions)
                for error in result.errors
            ]
        return result

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # contract_error logs what is unexpected, once; expected denials are not errors.
        return None


def validation_rules(settings: Settings) -> list[type[ASTValidationRule]]:
    """Built once per schema: the validation cache keys on these very classes."""
    rules: list[type[ASTValidationRule]] = list(DOCUMENT_RULES)
    if not settings.introspection_enabled:
        rules.append(NoSchemaIntrospectionCustomRule)
    return rules


def build_schema(settings: Settings) -> KeyturnSchema:
    documents = DocumentCache(validation_rules(settings))
    extensions: list[Callable[[], SchemaExtension]] = [lambda: CachedDocuments(documents)]
    # Suggestions name fields and types the caller did not ask for: they are as public as the
    # schema itself, so they follow the introspection setting.
    suggestions = settings.introspection_enabled
    return KeyturnSchema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=not suggestions),
        suggestions=suggestions,
        documents=documents,
    )


def sdl() -> str:
    return str(KeyturnSchema(query=Query, mutation=Mutation))


__all__ = ["MAX_QUERY_DEPTH", "build_schema", "sdl"]
