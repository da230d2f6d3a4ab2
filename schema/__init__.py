"""The GraphQL schema, assembled from the per-area query and mutation types."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from inspect import isawaitable
from typing import Any

import strawberry
from graphql import DocumentNode
from graphql import execute as execute_document
from graphql.error import GraphQLError
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from api.settings import Settings
from schema.admin import AdminMutation, AdminQuery
from schema.auth import AuthMutation, AuthQuery
from schema.direct import resolve_directly
from schema.documents import CachedDocuments, DocumentCache
from schema.errors import contract_error, drop_tracebacks
from schema.execution import KeyturnExecutionContext
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

    A document already parsed and validated without error (nearly every request: clients send
    the same few texts) runs straight through graphql-core, as strawberry itself would run it,
    past strawberry's per-request machinery: an execution context, an extensions runner, and
    entered and left hooks for each of four stages, which are there for extensions and which the
    schema's only extension (the document cache) needs only for a text it has not seen. That
    machinery was about 45 µs of a cached `me`'s 165 in process (docs/performance.md).
    """

    def __init__(
        self,
        *args: Any,
        suggestions: bool = True,
        documents: DocumentCache | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("execution_context_class", KeyturnExecutionContext)
        super().__init__(*args, **kwargs)
        self.suggestions = suggestions
        self.documents = documents
        self.direct_fields = resolve_directly(self)
        # The short path only while the document cache is all the extensions there are: any
        # other would be skipped by it.
        extensions = self.get_extensions()
        self._known = (
            documents
            if extensions and all(isinstance(e, CachedDocuments) for e in extensions)
            else None
        )

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
        known = self._known.runnable(query, operation_name) if self._known and query else None
        allowed = allowed_operation_types or DEFAULT_ALLOWED_OPERATION_TYPES
        if known is not None and known[1] in allowed:
            document, _, name = known
            result = await self._execute_known(
                document, variable_values, context_value, root_value, name, operation_extensions
            )
        else:
            result = await super().execute(
                query,
                variable_values,
                context_value,
                root_value,
                operation_name,
                allowed_operation_types,
                operation_extensions,
            )
        if refused_before_execution(result):
            # Refused before any field ran (variables that do not coerce, say): strawberry
            # passes graphql-core's answer on as an ordinary result, which GraphQL over HTTP
            # would then answer 200 with `data: null`.
            result = PreExecutionError(
                data=None, errors=result.errors, extensions=result.extensions
            )
        if result.errors:
            request_id = getattr(context_value, "request_id", None)
            raised = result.errors
            result.errors = [
                contract_error(error, request_id, suggestions=self.suggestions) for error in raised
            ]
            for error in raised:  # answered, and logged where unexpected
                drop_tracebacks(error)
        return result

    async def _execute_known(
        self,
        document: DocumentNode,
        variable_values: dict[str, Any] | None,
        context_value: Any | None,
        root_value: Any | None,
        operation_name: str | None,
        operation_extensions: dict[str, Any] | None,
    ) -> ExecutionResult:
        """What strawberry's `execute` does once parsing and validation have passed, when no
        extension hooks anything else (tests/schema/test_documents.py runs both paths)."""
        try:
            outcome = execute_document(
                self._schema,
                document,
                root_value=root_value,
                context_value=context_value,
                variable_values=variable_values,
                operation_name=operation_name,
                is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]
                executor_class=self.execution_context_class,
                operation_extensions=operation_extensions,
            )
            if isawaitable(outcome):
                outcome = await outcome
        except Exception as exc:  # as strawberry answers it: an error before any field ran
            error = (
                exc if isinstance(exc, GraphQLError) else GraphQLError(str(exc), original_error=exc)
            )
            return PreExecutionError(data=None, errors=[error], extensions={})
        return ExecutionResult(data=outcome.data, errors=outcome.errors, extensions={})

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # contract_error logs what is unexpected, once; expected denials are not errors.
        return None


def refused_before_execution(result: ExecutionResult) -> bool:
    """No data, and errors of which none is a field's (a field's error has a path)."""
    return (
        not isinstance(result, PreExecutionError)
        and result.data is None
        and bool(result.errors)
        and all(error.path is None for error in result.errors or ())
    )


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
