"""The ASGI entry point for uvicorn: `uvicorn --factory api.main:app_from_env`."""

from __future__ import annotations

import gc
import sys

from starlette.applications import Starlette

from api.app import create_app
from api.logs import configure_server_logging
from api.settings import load_settings


def app_from_env() -> Starlette:
    configure_server_logging()
    app = create_app(load_settings())
    settle_heap()
    share_the_interpreter()
    return app


YOUNG_OBJECTS = 10_000
"""Objects allocated (net of those freed) between two collections of the youngest generation;
Python's default is 700."""


def settle_heap() -> None:
    """Moves everything built so far (modules, schema, app) out of the collector's sight, and
    lets the collector wait for more young objects before it runs.

    The objects built at start-up live as long as the process, yet every full collection walked
    all of them: about 70 ms with the event loop stopped, a pause that every request in flight
    then waited out. Frozen, they are never scanned again.

    A request, served or refused, leaves no garbage for the collector (schema/execution.py,
    schema/errors.py drop_tracebacks), but the requests in
    flight hold a few thousand young objects between them, more than Python's threshold of 700:
    every collection found them alive, promoted them, and lost the count of their frees, so the
    next one came a few requests later. Under a refresh load that was about 140 collections a
    second, 6 to 7% of the loop's time; at 10,000 young objects none ran at all (docs/
    performance.md, eleventh round). Garbage that does form (the tokens of a document that does
    not parse, say) is still collected, in passes of a few milliseconds.
    Done once per server process, never in tests (which build many apps in one process).
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_OBJECTS, older, oldest)


SWITCH_INTERVAL = 0.0002
"""Seconds a thread waiting for the interpreter lets the running one go on before asking it to
let go (Python's default is 0.005)."""


def share_the_interpreter() -> None:
    """Hands the interpreter to a waiting thread within 0.2 ms instead of 5.

    The event loop runs Python nearly all the time under load, and the threads beside it (the
    SQLite commit thread, password hashing) need the interpreter for a few microseconds at the
    start and the end of their work, while everything they did waits for that moment: a
    batch of rotations sat up to 5 ms after its commit before the loop could hear of it, and
    the next batch waited behind it (docs/performance.md, ninth round). The loop loses the
    interpreter only when a thread asks for it, so a process with no such thread runs as before.
    """
    sys.setswitchinterval(SWITCH_INTERVAL)
