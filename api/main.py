"""The ASGI entry point for uvicorn: `uvicorn --factory api.main:app_from_env`."""

from __future__ import annotations

from starlette.applications import Starlette

from api.app import create_app
from api.logs import configure_server_logging
from api.settings import load_settings


def app_from_env() -> Starlette:
    configure_server_logging()
    return create_app(load_settings())
