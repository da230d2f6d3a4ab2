"""Turning every failure into a contract error code, in one place.

Expected denials (AuthError) keep their message and code; a database that cannot be reached is
SERVICE_UNAVAILABLE; GraphQL's own parse and validation errors are BAD_USER_INPUT with their
message; anything else is masked and logged once with the request id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql.error import GraphQLError
from strawberry.extensions import SchemaExtension

from api.db import is_unavailable
from api.errors import DEFAULT_MESSAGES, AuthError, ErrorCode

logger = logging.getLogger("keyturn.graphql")


def _with_code(error: GraphQLError, message: str, extensions: dict[str, object]) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


def contract_error(error: GraphQLError, request_id: str | None) -> GraphQLError:
    original = error.original_error
    if isinstance(original, AuthError):
        return _with_code(
            error, original.message, {"code": original.code.value, **original.extensions}
        )
    if original is None or isinstance(original, GraphQLError):
        # GraphQL's own parse, validation and variable-coercion errors: safe, clear messages.
        code = (error.extensions or {}).get("code")
        if isinstance(code, str) and code in ErrorCode.__members__:
            return error
        return _with_code(error, error.message, {"code": ErrorCode.BAD_USER_INPUT.value})
    if is_unavailable(original):
        logger.warning("database unavailable (request %s): %s", request_id, type(original).__name__)
        code = ErrorCode.SERVICE_UNAVAILABLE
    else:
        logger.error("unexpected error (request %s)", request_id, exc_info=original)
        code = ErrorCode.INTERNAL_SERVER_ERROR
    extensions: dict[str, object] = {"code": code.value}
    if request_id:
        extensions["requestId"] = request_id
    return _with_code(error, DEFAULT_MESSAGES[code], extensions)


class ContractErrors(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        context = self.execution_context.context
        request_id = getattr(context, "request_id", None)
        result.errors = [contract_error(error, request_id) for error in result.errors]
