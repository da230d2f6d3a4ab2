"""The HTTP middleware stack, outermost first: plain ASGI classes, one concern each.

- RequestContext: a request id in `scope["state"]` and the `X-Request-ID` header, the security
  headers (nosniff, no framing, no referrer; HSTS where cookies are Secure; `Cache-Control:
  no-store` on the GraphQL endpoint), and one access-log line per request (the path only: query
  strings can carry GraphQL variables). One layer for what every response gets: each layer
  wrapping `send` cost a cached `me` about 2% (measured with bench/inproc.py and wrk).
- CORS: only the configured origins, always with credentials; any other origin gets no CORS
  header at all (Starlette's CORSMiddleware sends some to every origin).
- BodyLimit: a body over 64 KB is answered 413 before anything parses it, chunked or not.
"""

from __future__ import annotations

import json
import logging
import re
import time

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.clients import Network, client_address, parse_networks, peer_is_trusted
from api.logs import escape
from api.settings import Settings
from models.ids import random_hex

access_logger = logging.getLogger("keyturn.access")
cors_logger = logging.getLogger("keyturn.cors")

MAX_BODY_BYTES = 64 * 1024
REQUEST_ID_HEADER = "X-Request-ID"
# An id a trusted proxy already gave the request is kept, when it is plainly an id.
UPSTREAM_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")
HSTS = "max-age=63072000; includeSubDomains"
CORS_METHODS = ("GET", "POST")
CORS_HEADERS = ("accept", "authorization", "content-type", "x-request-id")
CORS_MAX_AGE = "600"


def build_middleware(settings: Settings) -> list[Middleware]:
    return [
        Middleware(
            RequestContext,
            trusted_proxies=parse_networks(settings.trusted_proxies),
            hsts=settings.cookie_secure or settings.is_production,
        ),
        Middleware(CORS, origins=settings.cors_origins),
        Middleware(BodyLimit, max_bytes=MAX_BODY_BYTES),
    ]


class DirectRoute:
    """POSTs to one path go straight to their endpoint, past Starlette's exception middleware
    and router: that is every GraphQL call, and the two cost a cached `me` about a twentieth of
    its time. The endpoint must handle its own HTTP errors (GraphQLView does); anything it lets
    escape still reaches the error middleware outside. Every other request takes the router.
    Last in the middleware list, so the layers above see every request alike.
    """

    def __init__(self, app: ASGIApp, path: str, endpoint: ASGIApp) -> None:
        self.app = app
        self.path = path
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == self.path
            and not scope.get("root_path")  # mounted below a prefix: the router knows best
        ):
            await self.endpoint(scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def send_json_error(send: Send, status: int, message: str) -> None:
    """An HTTP-level refusal in GraphQL's error shape, so clients parse it like any other."""
    body = json.dumps({"errors": [{"message": message, "extensions": {"code": "BAD_USER_INPUT"}}]})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})


class RequestContext:
    def __init__(self, app: ASGIApp, trusted_proxies: tuple[Network, ...], hsts: bool) -> None:
        self.app = app
        self.trusted = trusted_proxies
        self.new_id = random_hex
        headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if hsts:
            headers.append((b"strict-transport-security", HSTS.encode()))
        self.headers = tuple(headers)
        # Answers carry tokens and per-user data, errors included: no cache keeps them.
        self.graphql_headers = (*self.headers, (b"cache-control", b"no-store"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = self._upstream_id(scope) or self.new_id()
        scope.setdefault("state", {})["request_id"] = request_id
        id_header = (b"x-request-id", request_id.encode())
        wanted = self.graphql_headers if scope["path"].rstrip("/") == "/graphql" else self.headers
        status = 0
        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                # Added where the app did not set its own (the console sets a stricter policy).
                headers.extend(pair for pair in wanted if pair[0] not in present)
                headers.append(id_header)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            # Everything the line needs is worked out only when the line is written.
            if access_logger.isEnabledFor(logging.INFO):
                client = client_address(HTTPConnection(scope), self.trusted)
                access_logger.info(
                    "%s %s %s %.0fms client=%s request=%s",
                    escape(scope["method"], 16),
                    escape(scope["path"]),
                    status or "-",
                    (time.perf_counter() - started) * 1000,
                    escape(client or "-", 64),
                    request_id,
                )

    def _upstream_id(self, scope: Scope) -> str | None:
        # Only a trusted proxy may name the request: anyone else could forge log correlation.
        if not self.trusted:
            return None
        conn = HTTPConnection(scope)
        given = conn.headers.get(REQUEST_ID_HEADER)
        if given is None or not UPSTREAM_REQUEST_ID.fullmatch(given):
            return None
        return given if peer_is_trusted(conn, self.trusted) else None


class CORS:
    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.origins = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        allowed = origin is not None and origin in self.origins
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(headers, origin if allowed else None, send)
            return
        if not allowed or origin is None:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                response_headers.update(self._allow(origin))
                response_headers["Access-Control-Expose-Headers"] = REQUEST_ID_HEADER
                response_headers.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, headers: Headers, origin: str | None, send: Send) -> None:
        method = headers["access-control-request-method"].strip().upper()
        requested = {
            name.strip().lower()
            for name in headers.get("access-control-request-headers", "").split(",")
            if name.strip()
        }
        if origin is None or method not in CORS_METHODS or not requested <= set(CORS_HEADERS):
            # Refused, and with no CORS header at all: the browser then blocks the request and
            # shows its developer a generic CORS error. The log says which rule refused it.
            if origin is None:
                why = "its origin is not listed in KEYTURN_CORS_ORIGINS"
            elif method not in CORS_METHODS:
                why = f"it asks for the method {escape(method, 16)}"
            else:
                extra = ", ".join(sorted(requested - set(CORS_HEADERS)))
                why = f"it asks for the headers {escape(extra, 100)}"
            cors_logger.info(
                "CORS preflight from %s refused: %s",
                escape(headers.get("origin", "-"), 100),
                why,
            )
            await send_json_error(send, 400, f"This cross-origin request is not allowed: {why}.")
            return
        response_headers = MutableHeaders(
            {
                **self._allow(origin),
                "Access-Control-Allow-Methods": ", ".join(CORS_METHODS),
                "Access-Control-Allow-Headers": ", ".join(CORS_HEADERS),
                "Access-Control-Max-Age": CORS_MAX_AGE,
                "Vary": "Origin",
                "Content-Length": "0",
            }
        )
        await send({"type": "http.response.start", "status": 200, "headers": response_headers.raw})
        await send({"type": "http.response.body", "body": b""})

    @staticmethod
    def _allow(origin: str) -> dict[str, str]:
        # Never "*": the refresh cookie rides along, and credentials need the exact origin.
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true"}


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        # Read it all here, at most max_bytes of it, whatever Content-Length claimed (or a
        # chunked body did not claim), then hand the app exactly that.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        await send_json_error(
            send, 413, f"The request body is larger than {self.max_bytes // 1024} KB."
        )
