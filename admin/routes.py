"""The admin console's routes (the page and its assets), and GraphiQL's assets."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from admin import graphiql
from admin.security import CONSOLE_HEADERS, GRAPHIQL_ASSET_HEADERS, WithHeaders
from api.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent / "static"


def admin_routes(settings: Settings) -> list[BaseRoute]:
    # The page tells the console whether to offer GraphiQL; it is the same for every request.
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    page = page.replace("{{graphiql}}", "on" if settings.graphiql_enabled else "off")

    async def console(request: Request) -> Response:
        return HTMLResponse(page, headers=CONSOLE_HEADERS)

    routes: list[BaseRoute] = [
        Route("/admin", console, methods=["GET"]),
        Mount("/admin/static", WithHeaders(StaticFiles(directory=STATIC_DIR), CONSOLE_HEADERS)),
    ]
    if settings.graphiql_enabled:
        graphiql.warn_if_missing()
        assets = graphiql.AssetFiles(directory=graphiql.ASSETS_DIR, check_dir=False)
        routes.append(Mount(graphiql.ASSETS_PATH, WithHeaders(assets, GRAPHIQL_ASSET_HEADERS)))
    return routes
