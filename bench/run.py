"""`make bench`: Keyturn's request paths against the framework floor and the limit, with wrk.

    .venv/bin/python -m bench.run [--duration 5] [--repeats 5] [--db sqlite,postgres]
                                  [--workers 1,2] [--no-write]

Starts every server itself (uvicorn with uvloop and httptools, access log off), on a fresh
SQLite file and a scratch PostgreSQL database, each seeded with a few thousand sessions. All
servers start first; every case runs once to warm up, then the whole list of cases runs
`--repeats` times, interleaved so that load from elsewhere on a shared machine hits every case
alike, each for `--duration` seconds. The table gives the median requests/s with min and max,
the median p50 and p99 latency, and the ratios the targets are about; it replaces the
generated part of docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from api.migrations import migrate
from api.tokens import TokenService
from bench import report
from bench.report import Key
from bench.seed import BENCH_PASSWORD, seed
from bench.servers import (
    BenchSession,
    Server,
    WrkResult,
    access_token,
    create_pg_database,
    drop_pg_database,
    live_sessions,
    parse_wrk,
    refresh_token,
    run_wrk,
    server_env,
    wrk_command,
)

KEYTURN = "bench.baselines:keyturn_app"
FLOOR = "bench.baselines:floor_app"
SHORT_FLOOR = "bench.baselines:short_floor_app"
LIMIT = "bench.baselines:limit_app"

CONNECTIONS = 16  # throughput cases
LOGIN_CONNECTIONS = 8
FLOOD_LOGIN_CONNECTIONS = 16
FLOOD_ME_CONNECTIONS = 4
SEED_USERS = 1000
SEED_SESSIONS = 10000
# `me` cycles over one session per connection: each is a busy client, whose access check is
# served from the cache (and re-read in the background about once a second). `me cold` cycles
# over so many sessions that each comes back only after its cached check has expired (5,000
# sessions at under 5,000 requests a second), so every check goes to the database, as it does
# for clients that call less than once a second.
ME_POOL = CONNECTIONS
COLD_POOL = 5000
REFRESH_POOL = 64  # sessions per refresh run; each request rotates one of them
LOGIN_ACCOUNTS = 50


@dataclass
class Plan:
    duration: float
    warmup: float
    workdir: Path
    tokens: TokenService
    results: dict[Key, list[WrkResult]] = field(default_factory=dict)


Job = tuple[Key, Callable[[float], WrkResult]]


def lines_file(workdir: Path, name: str, lines: list[str]) -> str:
    path = workdir / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def me_job(plan: Plan, key: tuple[str, str, int], case: str, server: Server, tokens: str) -> Job:
    """Authenticated `{ me { id email } }` over the sessions whose tokens are in `tokens`."""
    return (
        (*key, case),
        lambda s: run_wrk(
            wrk_command("me", server.port, s, CONNECTIONS, plan.workdir, tokens, "1"), server
        ),
    )


def keyturn_jobs(
    plan: Plan,
    key: tuple[str, str, int],
    server: Server,
    live: Iterator[BenchSession],
    cold_file: str,
    me_file: str,
) -> list[Job]:
    workdir, port = plan.workdir, server.port
    emails = lines_file(
        workdir, "emails.txt", [f"user{i:07d}@bench.example" for i in range(LOGIN_ACCOUNTS)]
    )

    def typename(seconds: float) -> WrkResult:
        return run_wrk(wrk_command("typename", port, seconds, CONNECTIONS, workdir, "x", "1"))

    def refresh(seconds: float) -> WrkResult:
        # Fresh sessions for every run: the last tokens of a run die with its wrk process.
        pool = [refresh_token(plan.tokens, next(live)) for _ in range(REFRESH_POOL)]
        path = lines_file(workdir, f"refresh-{uuid.uuid4().hex}.txt", pool)
        return run_wrk(
            wrk_command("refresh", port, seconds, CONNECTIONS, workdir, path, "1"), server
        )

    def login(seconds: float) -> WrkResult:
        command = wrk_command(
            "login", port, seconds, LOGIN_CONNECTIONS, workdir, emails, "1", BENCH_PASSWORD
        )
        return run_wrk(command)

    flood_key = (*key, "flood login")

    def flood(seconds: float) -> WrkResult:
        command = wrk_command(
            "login", port, seconds, FLOOD_LOGIN_CONNECTIONS, workdir, emails, "1", BENCH_PASSWORD
        )
        flooding = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        time.sleep(0.2)  # the flood is on before the first `me` goes out
        me = run_wrk(
            wrk_command("me", port, seconds - 0.5, FLOOD_ME_CONNECTIONS, workdir, me_file, "1")
        )
        out, _ = flooding.communicate()
        plan.results.setdefault(flood_key, []).append(parse_wrk(out))
        return me

    return [
        ((*key, "me cold"), me_job(plan, key, "me cold", server, cold_file)[1]),
        ((*key, "typename"), typename),
        ((*key, "refresh"), refresh),
        ((*key, "login"), login),
        ((*key, "me+flood"), flood),
    ]


async def prepare_database(db: str, workdir: Path) -> tuple[str, Callable[[], None]]:
    if db == "sqlite":
        url = f"sqlite://{workdir / 'bench.sqlite3'}"
        cleanup: Callable[[], None] = lambda: None  # noqa: E731
    else:
        name = f"keyturn_bench_{uuid.uuid4().hex[:10]}"
        url = await create_pg_database(name)
        cleanup = lambda: asyncio.run(drop_pg_database(name))  # noqa: E731
    await migrate(url)
    await seed(url, SEED_USERS, SEED_SESSIONS)
    return url, cleanup


def print_summary(key: Key, runs: list[WrkResult]) -> None:
    server, db, workers, case = key
    rps = statistics.median(r.rps for r in runs)
    p99 = statistics.median(r.p99_ms for r in runs)
    errors = sum(r.errors for r in runs)
    print(
        f"  {server:8} {db:16} {workers}w {case:12} {rps:9.0f} req/s  p99 {p99:6.1f} ms"
        + (f"  ERRORS {errors}" if errors else ""),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--no-write", action="store_true", help="leave docs/performance.md alone")
    parser.add_argument(
        "--cases",
        help="only these cases, comma-separated (e.g. me,refresh): a quick A/B run that prints "
        "its figures and leaves docs/performance.md alone",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk is not installed (make bench installs it with apt-get)")

    started = time.monotonic()
    load_before = os.getloadavg()
    secret_pair = (secrets.token_urlsafe(48), secrets.token_urlsafe(48))
    tokens = TokenService(
        access_secret=secret_pair[0].encode(),
        refresh_secret=secret_pair[1].encode(),
        issuer="keyturn",
        audience="keyturn",
        access_ttl=3600,
        refresh_ttl=604800,
    )
    worker_counts = [int(w) for w in args.workers.split(",")]
    dbs = args.db.split(",")
    with tempfile.TemporaryDirectory(prefix="keyturn-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        plan = Plan(args.duration, args.warmup, workdir, tokens)
        first: list[
            Job
        ] = []  # `me` everywhere and `refresh`, next to each other: the ratios pair these
        rest: list[Job] = []
        baseline_tokens = ""
        floors: dict[int, Server] = {}
        short_floors: dict[int, Server] = {}
        for db in dbs:
            print(f"{db}: migrating and seeding {SEED_SESSIONS} sessions", flush=True)
            url, cleanup = asyncio.run(prepare_database(db, workdir))
            stack.callback(cleanup)
            sessions = asyncio.run(live_sessions(url))
            me_file = lines_file(
                workdir, f"me-{db}.txt", [access_token(tokens, s) for s in sessions[:ME_POOL]]
            )
            cold_file = lines_file(
                workdir,
                f"cold-{db}.txt",
                [access_token(tokens, s) for s in sessions[ME_POOL : ME_POOL + COLD_POOL]],
            )
            live = iter(sessions[ME_POOL + COLD_POOL :])
            env = server_env(url, secret_pair)
            if not baseline_tokens:
                # The baselines use no database: they start once, with the first one's tokens.
                baseline_tokens = me_file
                for app, name in ((FLOOR, "floor"), (LIMIT, "limit")):
                    for workers in worker_counts:
                        server = stack.enter_context(Server(app, env, workers, workdir))
                        first.append(me_job(plan, (name, "-", workers), "me", server, me_file))
                        if name == "floor":
                            floors[workers] = server
                    for workers in worker_counts:
                        short_floors[workers] = stack.enter_context(
                            Server(SHORT_FLOOR, env, workers, workdir)
                        )
            for workers in worker_counts:
                server = stack.enter_context(Server(KEYTURN, env, workers, workdir))
                key = ("keyturn", db, workers)
                # The floor again right before this server's me, so that the two runs the
                # me / floor ratio pairs are seconds apart, not a minute.
                floor_key = report.floor_next_to(db, workers)
                first.append(me_job(plan, floor_key[:3], "me", floors[workers], baseline_tokens))
                short_key = report.short_floor_next_to(db, workers)[:3]
                first.append(me_job(plan, short_key, "me", short_floors[workers], baseline_tokens))
                first.append(me_job(plan, key, "me", server, me_file))
                jobs_here = keyturn_jobs(plan, key, server, live, cold_file, me_file)
                # refresh right after this server's me: the refresh/me ratio pairs them.
                first += [job for job in jobs_here if job[0][3] == "refresh"]
                rest += [job for job in jobs_here if job[0][3] != "refresh"]
        # Every server is up and idle but the one measured. Each repeat runs every case once,
        # so a burst of load from elsewhere on the machine hits all of them alike.
        jobs = sorted(first, key=lambda job: job[0][2]) + rest
        if args.cases:
            jobs = [job for job in jobs if job[0][3] in args.cases.split(",")]
        print(f"warming up {len(jobs)} cases", flush=True)
        for _, run in jobs:
            run(plan.warmup)
        plan.results.clear()
        for repeat in range(args.repeats):
            print(f"repeat {repeat + 1} of {args.repeats}", flush=True)
            for key4, run in jobs:
                plan.results.setdefault(key4, []).append(run(plan.duration))
        ordered = {key4: plan.results[key4] for key4, _ in jobs}
        for key4, _ in jobs:
            if key4[3] == "me+flood" and (*key4[:3], "flood login") in plan.results:
                ordered[(*key4[:3], "flood login")] = plan.results[(*key4[:3], "flood login")]
        for key4, runs in ordered.items():
            print_summary(key4, runs)
    elapsed = time.monotonic() - started
    if args.cases:
        return
    text = report.render(ordered, args, elapsed, load_before, os.getloadavg())
    print(text)
    if not args.no_write:
        report.write(text)
        print("wrote docs/performance.md")


if __name__ == "__main__":
    main()
