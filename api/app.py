"""The app factory: Keyturn's Starlette app, built from explicit settings."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tortoise.contrib.starlette import RegisterTortoise

from admin.routes import admin_routes
from api.clock import Clock, utc_now
from api.db import connection, is_unavailable, tortoise_config
from api.graphql_view import GraphQLView
from api.middleware import DirectRoute, build_middleware
from api.runtime import Keyturn
from api.settings import Settings
from schema import build_schema

logger = logging.getLogger("keyturn")

READY_TIMEOUT = 2.0


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    # The query runs in a task of its own, awaited through a shield: on a network that swallows
    # packets, cancelling a query waits for asyncpg's cancel request and connection reset (many
    # seconds), and a readiness check must answer within its timeout. A stuck probe ends on the
    # pool's own timeouts; until then the app keeps a reference to it.
    state = request.app.state
    probes: set[asyncio.Task[Any]] = getattr(state, "readiness_probes", set())
    state.readiness_probes = probes
    conn = connection(state.keyturn.settings.database_url)
    probe = asyncio.create_task(conn.execute_query("SELECT 1"))
    probes.add(probe)
    probe.add_done_callback(probes.discard)
    # An abandoned probe's failure is no news: mark it retrieved.
    probe.add_done_callback(lambda task: task.cancelled() or task.exception())
    try:
        await asyncio.wait_for(asyncio.shield(probe), READY_TIMEOUT)
    except Exception as exc:
        if not is_unavailable(exc):
            logger.exception("readiness check failed")
        return JSONResponse(
            {"status": "unavailable", "reason": "database unreachable"}, status_code=503
        )
    return JSONResponse({"status": "ready"})


def create_app(settings: Settings, clock: Clock = utc_now) -> Starlette:
    kt = Keyturn.build(settings, clock)
    db_config = tortoise_config(settings.database_url)
    graphql = GraphQLView(
        build_schema(settings),
        kt,
        graphql_ide="graphiql" if settings.graphiql_enabled else None,
        allow_queries_via_get=True,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with RegisterTortoise(app, config=db_config):
            await kt.start()
            try:
                yield
            finally:
                await kt.stop()

    app = Starlette(
        routes=[
            Route("/graphql", graphql),  # any method: the view answers the others 405, in JSON
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            *admin_routes(settings),
        ],
        middleware=[
            *build_middleware(settings),
            Middleware(DirectRoute, path="/graphql", endpoint=graphql),
        ],
        lifespan=lifespan,
    )
    app.state.keyturn = kt
    return app
