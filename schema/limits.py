"""What one GraphQL document may ask for: depth, aliases, auth mutations, integer literals.

Each rule is a class defined once, so strawberry's validation cache (keyed on the rule classes)
keeps hitting. The rules measure the document with every fragment spread expanded, but each
fragment measured once: strawberry's own limiters expand a fragment again at each spread, which
a handful of fragments spreading each other twice turns into exponential work. A fragment cycle
counts as empty here; graphql-core's NoFragmentCyclesRule refuses the document anyway.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)

MAX_DEPTH = 10
MAX_ALIASES = 15
MAX_TOKENS = 2000
AUTH_MUTATIONS = ("login", "register", "refresh", "changePassword")
# Digits of an integer literal: plenty for any 32-bit Int, and far below the 4300 digits past
# which Python's int() raises (an unchecked one would surface as an internal error).
MAX_INT_LITERAL_DIGITS = 20
LONG_DIGIT_RUN = re.compile(rf"\d{{{MAX_INT_LITERAL_DIGITS + 1}}}")
# `ofType` only unwraps list and non-null wrappers: its chain is as long as the schema's
# wrapping (two or three) whatever the query asks, one lookup per level. The standard
# introspection query nests it up to nine deep, so counting it would refuse GraphiQL.
DEPTH_FREE_FIELDS = frozenset({"ofType"})

Measure = Callable[[SelectionSetNode], int]


class _Fragments:
    """Memoized per-fragment measures over one document."""

    def __init__(self, document: DocumentNode) -> None:
        self._definitions = {
            node.name.value: node
            for node in document.definitions
            if isinstance(node, FragmentDefinitionNode)
        }
        self._known: dict[tuple[str, str], int] = {}

    def measure(self, kind: str, name: str, measure: Measure) -> int:
        key = (kind, name)
        if key not in self._known:
            fragment = self._definitions.get(name)
            self._known[key] = 0  # a cycle back to this fragment adds nothing
            self._known[key] = measure(fragment.selection_set) if fragment else 0
        return self._known[key]


def _operations(document: DocumentNode) -> list[OperationDefinitionNode]:
    return [node for node in document.definitions if isinstance(node, OperationDefinitionNode)]


def query_depth(document: DocumentNode) -> int:
    """How many fields deep the deepest field sits (top-level fields are at depth 0)."""
    fragments = _Fragments(document)

    def depth(selection_set: SelectionSetNode) -> int:
        deepest = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                if selection.selection_set is not None:
                    step = 0 if selection.name.value in DEPTH_FREE_FIELDS else 1
                    deepest = max(deepest, step + depth(selection.selection_set))
            elif isinstance(selection, InlineFragmentNode):
                deepest = max(deepest, depth(selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                deepest = max(deepest, fragments.measure("depth", selection.name.value, depth))
        return deepest

    return max((depth(op.selection_set) for op in _operations(document)), default=0)


def alias_count(document: DocumentNode, ceiling: int) -> int:
    """Aliases as executed (a fragment's count once per spread), saturating at `ceiling`."""
    fragments = _Fragments(document)

    def count(selection_set: SelectionSetNode) -> int:
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += selection.alias is not None
                if selection.selection_set is not None:
                    total += count(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                total += count(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                total += fragments.measure("aliases", selection.name.value, count)
        return min(total, ceiling)

    return min(sum(count(op.selection_set) for op in _operations(document)), ceiling)


def auth_mutation_count(document: DocumentNode, ceiling: int) -> int:
    """The login, register, refresh and changePassword fields of every mutation, as executed."""
    fragments = _Fragments(document)

    def count(selection_set: SelectionSetNode) -> int:
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += selection.name.value in AUTH_MUTATIONS
            elif isinstance(selection, InlineFragmentNode):
                total += count(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                total += fragments.measure("auth", selection.name.value, count)
        return min(total, ceiling)

    mutations = [op for op in _operations(document) if op.operation is OperationType.MUTATION]
    return min(sum(count(op.selection_set) for op in mutations), ceiling)


class _DocumentRule(ValidationRule):
    """Measures the whole document once, when validation starts."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        try:
            self.check(context.document)
        except RecursionError:
            self.report_error(GraphQLError("The document nests fragments too deeply."))

    def check(self, document: DocumentNode) -> None:
        raise NotImplementedError


class QueryDepthLimit(_DocumentRule):
    """At most MAX_DEPTH levels of fields, introspection fields included."""

    def check(self, document: DocumentNode) -> None:
        depth = query_depth(document)
        if depth > MAX_DEPTH:
            self.report_error(
                GraphQLError(
                    f"The query is nested {depth} levels deep; at most {MAX_DEPTH} are allowed."
                )
            )


class AliasLimit(_DocumentRule):
    def check(self, document: DocumentNode) -> None:
        if alias_count(document, MAX_ALIASES + 1) > MAX_ALIASES:
            self.report_error(GraphQLError(f"The document uses more than {MAX_ALIASES} aliases."))


class OneAuthMutation(_DocumentRule):
    """One credential-checking or token-issuing field per document, however it is spelled."""

    def check(self, document: DocumentNode) -> None:
        if auth_mutation_count(document, 2) > 1:
            self.report_error(
                GraphQLError(
                    "A document may hold only one of login, register, refresh and "
                    "changePassword: send them in separate requests."
                )
            )


DOCUMENT_RULES: tuple[type[ValidationRule], ...] = (
    QueryDepthLimit,
    AliasLimit,
    OneAuthMutation,
)
