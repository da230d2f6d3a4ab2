"""The GraphQL HTTP endpoint: strawberry's ASGI view with Keyturn's typed context."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from api.clients import client_info
from api.runtime import Keyturn
from schema.context import Context, Loaders


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
            client=client_info(request, self.kt.trusted_proxies),
            loaders=Loaders(self.kt),
            request_id=request.scope.get("state", {}).get("request_id") or uuid.uuid4().hex,
        )
