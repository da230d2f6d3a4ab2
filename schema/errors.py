"""Turning every failure into a contract error code, in one place.

Expected denials (AuthError) keep their message and code; a database that cannot be reached is
SERVICE_UNAVAILABLE; GraphQL's own parse, validation and limit errors are BAD_USER_INPUT with
their message (less any "Did you mean" hint when suggestions are off); anything else is masked
and logged once with the request id.
"""

from __future__ import annotations

import logging
import traceback

from graphql.error import GraphQLError

from api.db import is_unavailable
from api.errors import DEFAULT_MESSAGES, AuthError, ErrorCode
from api.logs import redact

logger = logging.getLogger("keyturn.graphql")

SUGGESTION = " Did you mean "
# The answers an operator is asked about: the request id finds the request in the log.
WITH_REQUEST_ID = frozenset({ErrorCode.SERVICE_UNAVAILABLE, ErrorCode.INTERNAL_SERVER_ERROR})


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


def without_suggestion(message: str) -> str:
    # graphql-core appends its hints last: "Cannot query field 'mee'. Did you mean 'me'?"
    return message.split(SUGGESTION, 1)[0]


def drop_tracebacks(error: BaseException) -> None:
    """Lets go of the frames an error raised through, and those of every exception chained
    to it, once it has been answered and logged.

    A raised exception's traceback holds the frames it passed through, and one of them nearly
    always holds the exception again (a resolver's `info` and context, the executor's error
    handling, a shared check's future): a reference cycle. A refused request would otherwise
    leave its context, its Starlette request and response and about a hundred objects to the
    cycle collector, which under a flood of bad tokens runs every hundred requests or so.
    """
    pending = [error]
    seen: set[int] = set()
    while pending:
        exc = pending.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        exc.__traceback__ = None
        for linked in (getattr(exc, "original_error", None), exc.__cause__, exc.__context__):
            if isinstance(linked, BaseException):
                pending.append(linked)


def contract_error(
    error: GraphQLError, request_id: str | None, *, suggestions: bool = True
) -> GraphQLError:
    original = error.original_error
    if isinstance(original, AuthError):
        extensions = {"code": original.code.value, **original.extensions}
        if request_id and original.code in WITH_REQUEST_ID:
            extensions["requestId"] = request_id
        return _with_code(error, original.message, extensions)
    if original is None or isinstance(original, GraphQLError):
        # GraphQL's own parse, validation and variable-coercion errors: safe, clear messages.
        message = error.message if suggestions else without_suggestion(error.message)
        code = (error.extensions or {}).get("code")
        if isinstance(code, str) and code in ErrorCode.__members__:
            return error if message == error.message else _with_code(error, message, {"code": code})
        return _with_code(error, message, {"code": ErrorCode.BAD_USER_INPUT.value})
    if is_unavailable(original):
        logger.warning("database unavailable (request %s): %s", request_id, type(original).__name__)
        code = ErrorCode.SERVICE_UNAVAILABLE
    else:
        # Formatted here rather than with exc_info, so that the redaction covers the message of
        # the exception too: a bug must not leak a token into the log.
        details = "".join(traceback.format_exception(original))
        logger.error("unexpected error (request %s)\n%s", request_id, redact(details))
        code = ErrorCode.INTERNAL_SERVER_ERROR
    extensions = {"code": code.value}
    if request_id:
        extensions["requestId"] = request_id
    return _with_code(error, DEFAULT_MESSAGES[code], extensions)
