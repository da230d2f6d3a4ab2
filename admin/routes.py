"""The admin console's routes (the page and its assets)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from api.settings import Settings


def admin_routes(settings: Settings) -> list[BaseRoute]:
    return []
