"""The GraphQL HTTP endpoint: strawberry's ASGI view with Keyturn's typed context.

It speaks GraphQL over HTTP: `application/graphql-response+json` to clients that ask for it (with
400 for a document that never ran), `application/json` otherwise; every refusal, HTTP-level ones
included, comes back as JSON in GraphQL's error shape; batches are refused.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types.execution import ExecutionResult, PreExecutionError

from admin.graphiql import graphiql_page
from api.clients import is_unicode_text
from api.runtime import Keyturn
from schema.context import Context

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


class GraphQLView(GraphQL[Context, None]):
    def __init__(self, schema: Any, kt: Keyturn, **options: Any) -> None:
        super().__init__(schema, **options)
        self.kt = kt

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        # Keyturn serves no websockets: the view only ever sees HTTP requests.
        assert isinstance(request, Request)
        assert isinstance(response, Response)
        # Answers carry tokens and per-user data: no cache may keep them.
        response.headers["Cache-Control"] = "no-store"
        return Context(
            request=request,
            response=response,
            kt=self.kt,
            request_id=request.scope.get("state", {}).get("request_id") or uuid.uuid4().hex,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            if plain_json_post(request):
                response = await self.post_json(request)
            elif request.method not in ("GET", "POST"):
                # JSON like every other refusal here (Starlette's own 405 is plain text).
                response = http_error(405, "GraphQL is served over POST, and GET for queries.")
                response.headers["Allow"] = "GET, POST"
            else:
                response = await self.run(request)
        except HTTPException as exc:
            response = http_error(exc.status_code, _clearer(exc.reason, request))
            if isinstance(exc.__cause__, InvalidOperationTypeError) and request.method == "GET":
                # GraphQL over HTTP: a mutation sent with GET is 405, pointing at POST.
                response.status_code = 405
                response.headers["Allow"] = "POST"
        if response.media_type == JSON and prefers_graphql_response(request):
            response.headers["content-type"] = f"{GRAPHQL_RESPONSE}; charset=utf-8"
            if getattr(request.state, "graphql_request_error", False):
                response.status_code = 400
        await response(scope, receive, send)

    async def post_json(self, request: Request) -> Response:
        """A JSON POST, the way nearly every client calls: strawberry's `run` without the parts
        this request cannot need (IDE, GET, multipart, streaming, batches), measured at a sixth
        of a cached `me`. Everything else goes through `run` itself."""
        body = self.parse_json(await request.body())
        query, variables, extensions = graphql_request(body)
        sub_response = await self.get_sub_response(request)
        context = await self.get_context(request, sub_response)
        result = await self.execute_single(
            request=request,
            request_adapter=self.request_adapter_class(request),
            sub_response=sub_response,
            context=context,
            root_value=None,
            request_data=GraphQLRequestData(
                query, variables, body.get("operationName"), extensions
            ),
        )
        return self.create_response(await self.process_result(request, result), sub_response)

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        if request.method == "POST" and JSON in (request.content_type or ""):
            # The JSON that post_json did not take (a streamed answer asked for, an odd
            # content type): refused alike. Strawberry reads the cached body again.
            graphql_request(self.parse_json(await request.get_body()))
        return await super().parse_http_body(request)

    def decode_json(self, data: str | bytes) -> object:
        try:
            value = json.loads(data)
        except (ValueError, RecursionError) as exc:
            # Beyond strawberry's JSONDecodeError: bytes that are not UTF-8, integers of more
            # than 4300 digits, arrays nested past the recursion limit. All the client's fault.
            raise HTTPException(400, "Unable to parse request body as JSON") from exc
        if may_hold_surrogates(data) and holds_unpaired_surrogate(value):
            raise HTTPException(400, NOT_UNICODE)
        return value

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        processed = await super().process_result(request, result)
        if is_request_error(result):
            # Nothing ran, so the answer has no `data` (GraphQL spec, "Response"); GraphQL over
            # HTTP answers it 400 to the clients that ask for application/graphql-response+json.
            request.state.graphql_request_error = True
            processed.pop("data", None)
        return processed

    async def render_graphql_ide(self, request: Request) -> Response:
        # Strawberry's own page loads GraphiQL from a CDN; Keyturn serves it itself, offline.
        return graphiql_page()


NOT_UNICODE = "The request holds a string that is not Unicode text (an unpaired surrogate)."


def may_hold_surrogates(data: str | bytes) -> bool:
    """Whether JSON text could decode to a string with a surrogate code point: only through an
    escape (`\\ud800`), or through bytes beyond ASCII (`json.loads` decodes bytes with
    `surrogatepass`). Nearly every request has neither and skips the walk: a backslash is
    looked for with memchr and ASCII checked a word at a time, about 70 ns for a refresh's
    body, where the two substrings themselves took 870."""
    if isinstance(data, bytes):
        return 0x5C in data or not data.isascii()
    return "\\" in data or not data.isascii()


def holds_unpaired_surrogate(value: object) -> bool:
    """Whether a decoded JSON value holds a string, key or value, that is not Unicode text.

    JSON's `\\ud800` escape decodes to a lone surrogate, which no UTF-8 encoder takes (I-JSON,
    RFC 7493 §2.1, forbids it): the database, argon2 and the rate limiter's keys would each
    fail on it deep inside a resolver, after a login had counted its attempt. So such a request
    is refused whole, before anything runs.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not is_unicode_text(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def plain_json_post(request: Request) -> bool:
    """A POST of `application/json` that asks for no streamed answer."""
    if request.scope["method"] != "POST":
        return False
    headers = request.headers
    media = headers.get("content-type", "").partition(";")[0].strip().lower()
    accept = headers.get("accept", "")
    return media == JSON and "multipart/mixed" not in accept and "text/event-stream" not in accept


def graphql_request(
    body: object,
) -> tuple[str | None, dict[str, Any] | None, dict[str, Any] | None]:
    """The query, variables and extensions of a JSON body, refused as strawberry refuses them."""
    if isinstance(body, list):
        raise HTTPException(400, "Batching is off: send one operation per request.")
    if not isinstance(body, dict):
        raise HTTPException(400, "The request body must be a JSON object.")
    query = body.get("query")
    if not isinstance(query, str | None):
        raise HTTPException(
            400, "The GraphQL operation's `query` must be a string or null, if provided."
        )
    variables = body.get("variables")
    if not isinstance(variables, dict | None):
        raise HTTPException(
            400, "The GraphQL operation's `variables` must be an object or null, if provided."
        )
    extensions = body.get("extensions")
    if not isinstance(extensions, dict | None):
        raise HTTPException(
            400, "The GraphQL operation's `extensions` must be an object or null, if provided."
        )
    if query is None and extensions and "persistedQuery" in extensions:
        # Automatic persisted queries (a hash without the text): a 400 tells Apollo's link
        # to stop trying them, and this tells its developer why.
        raise HTTPException(400, "PersistedQueryNotSupported: send the query's text.")
    return query, variables, extensions


def is_request_error(result: ExecutionResult) -> bool:
    """A document refused before execution (syntax, validation, variables), not a failed field."""
    return isinstance(result, PreExecutionError) and all(
        (error.extensions or {}).get("code") == "BAD_USER_INPUT" for error in result.errors or ()
    )


def prefers_graphql_response(request: Request) -> bool:
    """The Accept header names application/graphql-response+json at least as high as JSON."""
    weights: dict[str, float] = {}
    for entry in request.headers.get("accept", "").split(","):
        media, *params = (part.strip().lower() for part in entry.split(";"))
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[media] = max(weight, weights.get(media, 0.0))
    wanted = weights.get(GRAPHQL_RESPONSE, 0.0)
    return wanted > 0 and wanted >= weights.get(JSON, 0.0)


def _clearer(reason: str, request: Request) -> str:
    """Strawberry's refusals, saying what to send instead."""
    if reason == "Unsupported content type":
        return "Unsupported content type: send GraphQL as application/json."
    if request.method == "GET" and reason.startswith("Unable to parse request body as JSON"):
        return "The variables or extensions parameter of this GET is not JSON."
    return reason


def http_error(status: int, message: str) -> Response:
    code = "NOT_FOUND" if status == 404 else "BAD_USER_INPUT"
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status)
