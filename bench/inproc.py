"""Where a request's time goes, without HTTP or wrk: the ASGI apps called in one process.

    .venv/bin/python -m bench.inproc [--db sqlite|postgres] [--requests 3000] [--repeats 5]
                                     [--cases CASE,CASE] [--profile CASE]

Keyturn (its whole middleware stack, as `keyturn serve` builds it) and the framework floor of
bench/baselines.py (stock, and on Keyturn's short path) are driven with the same
`{ me { id email } }` requests through their ASGI callables, interleaved, so the figures are the
servers' own CPU cost per request, free of the network, the HTTP parser and wrk's share of the
cores. It prints the median microseconds per request of each case and its ratio to the floor;
`--profile CASE` runs that case under cProfile and prints the 30 costliest functions
(cumulative). `make bench` (bench/run.py) measures the same
servers over HTTP; this is the tool to find where the time goes.

`keyturn refresh` rotates one token at a time; `keyturn refresh x16` has sixteen callers at
once, whose rotations share transactions as a loaded server's do, and its event loop's CPU per
refresh against `me`'s is the HTTP target's ratio without HTTP's equal share of both.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import uvloop

from api.migrations import migrate
from bench.seed import seed
from bench.servers import (
    UNLIMITED,
    access_token,
    create_pg_database,
    drop_pg_database,
    live_sessions,
    refresh_token,
)

ME = json.dumps({"query": "{ me { id email } }"}).encode()
REFRESH = (
    "mutation ($t: String) { refresh(refreshToken: $t, refreshTokenDelivery: BODY) "
    "{ accessToken refreshToken } }"
)
REFRESH_POOL = 64
TYPENAME = json.dumps({"query": "{ __typename }"}).encode()
SESSIONS = 16
CLIENTS = 16  # callers at once in `keyturn refresh x16`; REFRESH_POOL is a multiple
REFRESH_SHARE = 4  # a refresh case runs this fraction of --requests: each costs several `me`s
CASES = (
    "floor me",
    "short floor me",
    "keyturn typename",
    "keyturn me",
    "keyturn refresh",
    "keyturn refresh x16",
)

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def scope(token: str | None) -> dict[str, Any]:
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"accept", b"application/json"),
    ]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def call(app: App, request_scope: dict[str, Any], body: bytes) -> bytes:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(dict(request_scope), receive, send)
    status = sent[0]["status"]
    payload = b"".join(m.get("body", b"") for m in sent[1:])
    if status != 200 or b'"errors"' in payload:
        raise RuntimeError(f"{status}: {payload[:300]!r}")
    return payload


async def timed(app: App, scopes: list[dict[str, Any]], body: bytes, n: int) -> float:
    """Microseconds per request over n requests cycling over the scopes."""
    started = time.perf_counter()
    for i in range(n):
        await call(app, scopes[i % len(scopes)], body)
    return (time.perf_counter() - started) / n * 1e6


def case_names(text: str) -> set[str]:
    """--cases: names of CASES, comma-separated; an unknown one is refused, not left out."""
    names = {name.strip() for name in text.split(",")}
    if unknown := names - set(CASES):
        raise argparse.ArgumentTypeError(f"no such case: {', '.join(sorted(unknown))}")
    return names


def refreshes(requests: int) -> int:
    return requests // REFRESH_SHARE


class Rotations:
    """`refresh` in BODY mode over a pool of sessions: each answer's token goes back in."""

    def __init__(self, tokens: list[str]) -> None:
        self.pool = tokens

    async def timed(self, app: App, n: int, clients: int = 1) -> float:
        """Microseconds per refresh over n refreshes, from `clients` callers at once (several:
        their rotations share transactions, as under load; each owns its slots of the pool)."""
        started = time.perf_counter()
        anonymous = scope(None)

        async def client(first: int) -> None:
            for i in range(first, n, clients):
                slot = i % len(self.pool)
                body = json.dumps({"query": REFRESH, "variables": {"t": self.pool[slot]}})
                answer = json.loads(await call(app, anonymous, body.encode()))
                self.pool[slot] = answer["data"]["refresh"]["refreshToken"]

        await asyncio.gather(*(client(first) for first in range(clients)))
        return (time.perf_counter() - started) / n * 1e6


async def main_async(args: argparse.Namespace) -> None:
    # After the environment is set.
    from bench.baselines import floor_app, keyturn_app, short_floor_app

    async with AsyncExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if args.db == "sqlite":
            url = f"sqlite://{workdir / 'inproc.sqlite3'}"
        else:
            name = f"keyturn_bench_{uuid.uuid4().hex[:10]}"
            url = await create_pg_database(name)
            stack.push_async_callback(drop_pg_database, name)
        await migrate(url)
        await seed(url, 100, 1000)
        os.environ.update(
            {
                "KEYTURN_ENV": "production",
                "KEYTURN_DATABASE_URL": url,
                "KEYTURN_ACCESS_TOKEN_SECRET": secrets.token_urlsafe(32),
                "KEYTURN_REFRESH_TOKEN_SECRET": secrets.token_urlsafe(32),
                "KEYTURN_REFRESH_MAX_PER_IP": UNLIMITED,  # one client, hammering on purpose
            }
        )
        from bench.baselines import _tokens

        tokens = _tokens()
        live = await live_sessions(url)
        me_scopes = [scope(access_token(tokens, s)) for s in live[:SESSIONS]]
        rotations = Rotations([refresh_token(tokens, s) for s in live[-REFRESH_POOL:]])
        keyturn = keyturn_app()
        floor = floor_app()
        short_floor = short_floor_app()
        await stack.enter_async_context(keyturn.router.lifespan_context(keyturn))
        cases: dict[str, Callable[[int], Awaitable[float]]] = {
            "floor me": lambda n: timed(floor, me_scopes, ME, n),
            "short floor me": lambda n: timed(short_floor, me_scopes, ME, n),
            "keyturn typename": lambda n: timed(keyturn, [scope(None)], TYPENAME, n),
            "keyturn me": lambda n: timed(keyturn, me_scopes, ME, n),
            "keyturn refresh": lambda n: rotations.timed(keyturn, refreshes(n)),
            "keyturn refresh x16": lambda n: rotations.timed(keyturn, refreshes(n), CLIENTS),
        }
        assert tuple(cases) == CASES, "CASES names every case, in this order"
        if args.cases:
            chosen = args.cases | {args.profile}
            cases = {name: case for name, case in cases.items() if name in chosen}
        for case in cases.values():  # warm every cache
            await case(200)
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await cases[args.profile](args.requests)
            profiler.disable()
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)
            return
        samples: dict[str, list[float]] = {name: [] for name in cases}
        cpu: dict[str, list[float]] = {name: [] for name in cases}
        loop_cpu: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.repeats):
            for name, case in cases.items():
                cpu_before, loop_before = time.process_time(), time.thread_time()
                samples[name].append(await case(args.requests))
                requests = refreshes(args.requests) if "refresh" in name else args.requests
                cpu[name].append((time.process_time() - cpu_before) / requests * 1e6)
                loop_cpu[name].append((time.thread_time() - loop_before) / requests * 1e6)
        floor_us = statistics.median(samples["floor me"]) if "floor me" in samples else None
        print(
            f"{args.db}: median µs per request over {args.repeats} runs of {args.requests} "
            "(wall clock; cpu: this process's CPU time, every thread, per request; loop: the "
            "event loop's thread alone)"
        )
        for name, values in samples.items():
            us = statistics.median(values)
            print(
                f"  {name:18} {us:8.1f} µs  (min {min(values):.1f}, max {max(values):.1f})"
                f"  cpu {statistics.median(cpu[name]):8.1f} µs"
                f"  loop {statistics.median(loop_cpu[name]):8.1f} µs"
                + (f"  floor/this {floor_us / us:5.2f}" if floor_us else "")
            )
        # The HTTP target's ratio, by CPU: a loaded server's refreshes share their commits, as
        # these sixteen callers' do; wrk and HTTP parsing add the same to both cases there.
        if "keyturn me" in loop_cpu and "keyturn refresh x16" in loop_cpu:
            me_loop = statistics.median(loop_cpu["keyturn me"])
            refresh_loop = statistics.median(loop_cpu["keyturn refresh x16"])
            print(f"  me / refresh x16 by the loop's CPU: {me_loop / refresh_loop:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite", choices=("sqlite", "postgres"))
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--cases",
        type=case_names,
        help="only these cases, comma-separated (e.g. 'keyturn me,keyturn refresh x16')",
    )
    parser.add_argument("--profile", choices=CASES)
    # uvloop, the loop `keyturn serve` runs on: asyncio's own costs more per round trip.
    uvloop.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
