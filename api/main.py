"""The ASGI entry point for uvicorn: `uvicorn --factory api.main:app_from_env`."""

from __future__ import annotations

import gc

from starlette.applications import Starlette

from api.app import create_app
from api.logs import configure_server_logging
from api.settings import load_settings


def app_from_env() -> Starlette:
    configure_server_logging()
    app = create_app(load_settings())
    settle_heap()
    return app


def settle_heap() -> None:
    """Moves everything built so far (modules, schema, app) out of the collector's sight.

    Those objects live as long as the process, yet every full collection walked all of them:
    about 70 ms with the event loop stopped, a pause that every request in flight then waited
    out. Frozen, they are never scanned again; what requests allocate is collected as before.
    Done once per server process, never in tests (which build many apps in one process).
    """
    gc.collect()
    gc.freeze()
