"""The HTTP middleware stack, outermost first."""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from api.settings import Settings


def build_middleware(settings: Settings) -> list[Middleware]:
    middleware: list[Middleware] = []
    if settings.cors_origins:
        # Only the listed origins, never "*", since the refresh cookie rides along.
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_credentials=True,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
                max_age=600,
            )
        )
    return middleware
