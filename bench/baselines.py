"""The two baselines Keyturn's `me` is measured against, served by uvicorn like Keyturn itself.

- the framework floor (`floor_app`): a bare strawberry app (its stock ASGI view) with Keyturn's
  document cache and rules (schema/documents.py: parse, limits and validation done once per query
  text) and its verified-token cache, answering `{ me { id email } }` from the verified JWT
  without any database;
- the floor on the short path (`short_floor_app`): the same, on Keyturn's schema class, which
  runs a document it has seen straight through graphql-core (schema/__init__.py). Keyturn's
  `me` against it is the cost of the access check and of Keyturn's HTTP layers alone, since
  against the stock floor the short path's own saving counts in Keyturn's favour;
- the limit (`limit_app`): a plain Starlette endpoint that reads the JSON body, verifies the JWT
  and returns JSON.

Both read the signing secrets from the same KEYTURN_* environment as Keyturn. `keyturn_app` is
Keyturn itself, as `keyturn serve` builds it, with its per-request access-log line off (a reverse
proxy keeps that log in production; uvicorn's own is off by --no-access-log).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import strawberry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from strawberry.asgi import GraphQL

from api.access import VerifiedTokens
from api.clock import utc_now
from api.main import app_from_env, settle_heap
from api.settings import load_settings
from api.tokens import AccessClaims, TokenExpired, TokenInvalid, TokenService
from schema import KeyturnSchema, validation_rules
from schema.documents import CachedDocuments, DocumentCache


def _tokens() -> TokenService:
    return TokenService.from_settings(load_settings())


def _claims(tokens: VerifiedTokens, authorization: str | None) -> AccessClaims:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        raise PermissionError("no bearer token")
    return tokens.verify(token.strip(), utc_now())


@strawberry.type
class FloorUser:
    id: strawberry.ID
    email: str


def keyturn_app() -> Starlette:
    app = app_from_env()
    logging.getLogger("keyturn.access").setLevel(logging.WARNING)
    return app


def floor_app() -> GraphQL[Any, None]:
    return _floor(short_path=False)


def short_floor_app() -> GraphQL[Any, None]:
    return _floor(short_path=True)


def _floor(short_path: bool) -> GraphQL[Any, None]:
    tokens = VerifiedTokens(_tokens())
    rules = validation_rules(load_settings())

    @strawberry.type
    class Query:
        @strawberry.field
        async def me(self, info: strawberry.Info[Any, None]) -> FloorUser:
            claims = _claims(tokens, info.context["request"].headers.get("authorization"))
            return FloorUser(id=strawberry.ID(str(claims.user_id)), email="user@bench.example")

    documents = DocumentCache(rules)
    extensions: list[Any] = [lambda: CachedDocuments(documents)]
    schema = (
        KeyturnSchema(query=Query, extensions=extensions, documents=documents)
        if short_path
        else strawberry.Schema(query=Query, extensions=extensions)
    )
    app = GraphQL(schema, graphql_ide=None)
    settle_heap()  # the same process tuning as Keyturn's, for a like-for-like floor
    return app


def limit_app() -> Starlette:
    tokens = VerifiedTokens(_tokens())

    async def me(request: Request) -> JSONResponse:
        json.loads(await request.body())
        try:
            claims = _claims(tokens, request.headers.get("authorization"))
        except (PermissionError, TokenInvalid, TokenExpired):
            return JSONResponse({"errors": [{"message": "Authentication required."}]})
        user = {"id": str(claims.user_id), "email": "user@bench.example"}
        return JSONResponse({"data": {"me": user}})

    app = Starlette(routes=[Route("/graphql", me, methods=["POST"])])
    settle_heap()
    return app


__all__ = ["floor_app", "keyturn_app", "limit_app", "short_floor_app"]
