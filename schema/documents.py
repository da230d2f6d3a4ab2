"""Parsed and validated documents, kept by their text: a client's query is checked once.

One schema extension does what strawberry's MaxTokensLimiter, AddValidationRules, ParserCache and
ValidationCache did together, plus the integer-literal guard, in two hooks: each extension costs
every request a context object and hook lookups at each of four stages, and those five were a
measurable part of a cached `me`. The same text always parses and validates the same way against
one schema and one set of rules, so both answers are kept, in one bounded LRU per schema.
A document that does not parse is not kept: junk cannot push real queries out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    IntValueNode,
    OperationDefinitionNode,
    Visitor,
    parse,
    specified_rules,
    visit,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document
from strawberry.types.graphql import OperationType
from strawberry.utils.operation import get_first_operation, get_operation_type

from schema.limits import LONG_DIGIT_RUN, MAX_INT_LITERAL_DIGITS, MAX_TOKENS

CACHE_SIZE = 256


@dataclass(slots=True)
class _Entry:
    document: DocumentNode
    errors: list[GraphQLError] | None = None  # None until validated
    # By the operation name asked for (only names the document defines: a client's other names
    # are not kept), its type and the name to run it by.
    operations: dict[str | None, tuple[OperationType, str | None]] = field(default_factory=dict)


class DocumentCache:
    """The documents of one schema, with its validation rules, by query text."""

    def __init__(self, rules: list[type[ASTValidationRule]], maxsize: int = CACHE_SIZE) -> None:
        self.rules = (*specified_rules, *rules)
        self.maxsize = maxsize
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def parse(self, query: str) -> DocumentNode:
        """The parsed document; raises GraphQLError for a syntax error or too many tokens."""
        entry = self._entries.get(query)
        if entry is not None:
            self.hits += 1
            self._entries.move_to_end(query)
            return entry.document
        self.misses += 1
        document = parse(query, max_tokens=MAX_TOKENS)
        self._entries[query] = _Entry(document)
        if len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)
        return document

    def runnable(
        self, query: str, operation_name: str | None
    ) -> tuple[DocumentNode, OperationType, str | None] | None:
        """The document, the type of the operation `operation_name` asks for and the name to run
        it by, when this text already parsed and validated without an error and has that
        operation; None otherwise (the caller then takes strawberry's whole path, which refuses
        it as it should). Strawberry runs the first operation when no name is given, by its
        name: so does this, for a text of one operation (GraphQL's GetOperation refuses to
        guess among several)."""
        entry = self._entries.get(query)
        if entry is None or entry.errors is None or entry.errors:
            return None
        operation = entry.operations.get(operation_name)
        if operation is None:
            if operation_name is None and names_required(entry.document):
                return None  # refused on the whole path (CachedDocuments.on_validate)
            try:
                kind = get_operation_type(entry.document, operation_name)
            except RuntimeError:  # no such operation
                return None
            name = operation_name
            if name is None:
                first = get_first_operation(entry.document)
                name = first.name.value if first is not None and first.name else None
            operation = entry.operations[operation_name] = (kind, name)
        self.hits += 1
        self._entries.move_to_end(query)
        return entry.document, *operation

    def validate(
        self, schema: GraphQLSchema, query: str, document: DocumentNode
    ) -> list[GraphQLError]:
        entry = self._entries.get(query)
        if entry is None or entry.document is not document:
            return self._validate(schema, query, document)  # evicted meanwhile: not kept again
        if entry.errors is None:
            entry.errors = self._validate(schema, query, document)
        return entry.errors

    def _validate(
        self, schema: GraphQLSchema, query: str, document: DocumentNode
    ) -> list[GraphQLError]:
        # Before graphql-core's own rules: ValuesOfCorrectTypeRule calls int() on every integer
        # literal, which raises instead of reporting past 4300 digits. The walk only when the
        # text holds such a run of digits at all (in a string, say).
        if LONG_DIGIT_RUN.search(query):
            try:
                visit(document, _IntLiterals())
            except GraphQLError as error:
                return [error]
        return validate_document(schema, document, self.rules)


class _IntLiterals(Visitor):
    def enter_int_value(self, node: IntValueNode, *_: Any) -> None:
        if len(node.value.lstrip("-")) > MAX_INT_LITERAL_DIGITS:
            raise GraphQLError("Integer literal out of range.", node)


class CachedDocuments(SchemaExtension):
    """Parses and validates through the schema's DocumentCache."""

    def __init__(self, cache: DocumentCache) -> None:
        self.cache = cache

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query:
            context.graphql_document = self.cache.parse(context.query)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.pre_execution_errors is None:
            context.pre_execution_errors = self.cache.validate(
                context.schema._schema, context.query or "", document
            )
            # strawberry keeps the name the request gave apart from the one it runs by.
            named = getattr(context, "_provided_operation_name", None) is not None
            if not context.pre_execution_errors and not named and names_required(document):
                context.pre_execution_errors = [GraphQLError(NAME_REQUIRED)]
        yield


# graphql-core's own words for it, which strawberry does not say: it runs the first operation.
NAME_REQUIRED = "Must provide operation name if query contains multiple operations."


def names_required(document: DocumentNode) -> bool:
    """More than one operation: a request must name the one to run (GraphQL's GetOperation)."""
    operations = (d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    return next(operations, None) is not None and next(operations, None) is not None
