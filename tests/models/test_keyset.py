"""Newest-first keyset pages: every row exactly once, ties included, and page N read from the
cursor on, not from the newest row."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from tortoise.expressions import Q

from api.db import connection, dialect_of
from models import AuditEvent
from models import Session as SessionRow
from models.audit import events_page, events_page_query
from models.sessions import sessions_page
from tests.conftest import Harness

START = datetime(2026, 11, 1, tzinfo=UTC)
EVENTS = 5000


async def test_audit_pages_give_every_event_once_when_many_share_an_instant(
    api: Harness,
) -> None:
    instants = [START, START + timedelta(seconds=1), START + timedelta(seconds=1), START]
    for n in range(15):
        await AuditEvent.create(
            kind="refreshed", created_at=instants[n % 4] + timedelta(hours=n // 8)
        )
    expected = [e.id for e in await AuditEvent.all().order_by("-created_at", "-id")]

    seen: list[uuid.UUID] = []
    after = None
    while True:
        page = await events_page(None, None, 2, after)
        seen += [e.id for e in page[:2]]
        if len(page) <= 2:
            break
        after = (page[1].created_at, page[1].id)

    assert seen == expected


async def test_session_pages_give_every_session_once_when_many_share_an_instant(
    api: Harness,
) -> None:
    user = await api.create_user("ties@example.com")
    for n in range(9):
        await SessionRow.create(
            user=user,
            token_version=0,
            current_token_id=uuid.uuid4(),
            rotated_at=START,
            created_at=START + timedelta(seconds=n % 2),
            last_used_at=START,
            expires_at=START + timedelta(days=7),
            absolute_expires_at=START + timedelta(days=30),
        )
    expected = [s.id for s in await SessionRow.filter(user=user).order_by("-created_at", "-id")]

    seen: list[uuid.UUID] = []
    after = None
    while True:
        page = await sessions_page(user.id, Q(), 2, after)
        seen += [s.id for s in page[:2]]
        if len(page) <= 2:
            break
        after = (page[1].created_at, page[1].id)

    assert seen == expected


_PG_EVENTS = f"""
INSERT INTO audit_events (id, created_at, kind)
SELECT gen_random_uuid(), TIMESTAMPTZ '2026-11-01 00:00:00+00' + i * INTERVAL '1 second',
       'refreshed'
FROM generate_series(1, {EVENTS}) AS i
"""  # noqa: S608 (a constant)
_SQLITE_EVENTS = f"""
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {EVENTS})
INSERT INTO audit_events (id, created_at, kind)
SELECT printf('00000000-0000-4000-8000-%012x', i),
       strftime('%Y-%m-%d %H:%M:%S+00:00', '2026-11-01', '+' || i || ' seconds'), 'refreshed'
FROM s
"""  # noqa: S608 (a constant)


async def load_refreshes(database_url: str) -> bool:
    """EVENTS refresh events, one a second from START, as the database itself writes them;
    True on PostgreSQL."""
    conn = connection(database_url)
    postgres = dialect_of(database_url) == "postgres"
    await conn.execute_script(_PG_EVENTS if postgres else _SQLITE_EVENTS)
    await conn.execute_script("ANALYZE audit_events")
    return postgres


async def explained(database_url: str, sql: str) -> tuple[str, int]:
    """The plan of `sql` and, on PostgreSQL, the buffers its run touched (0 on SQLite)."""
    conn = connection(database_url)
    if dialect_of(database_url) != "postgres":
        _, rows = await conn.execute_query(f"EXPLAIN QUERY PLAN {sql}")
        return "\n".join(row["detail"] for row in rows), 0
    _, rows = await conn.execute_query(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
    plan = "\n".join(row["QUERY PLAN"] for row in rows)
    return plan, int(plan.split("Buffers: shared hit=")[1].split()[0])


async def test_a_page_after_a_cursor_starts_in_the_index_at_the_cursor(
    api: Harness, database_url: str
) -> None:
    postgres = await load_refreshes(database_url)
    middle = await AuditEvent.all().order_by("-created_at", "-id").offset(EVENTS // 2).first()
    assert middle is not None
    query = events_page_query(None, None, 50, (middle.created_at, middle.id))

    assert len(await query) == 51  # the page and the row that tells a next one follows
    plan, touched = await explained(database_url, query.sql(params_inline=True))
    if postgres:
        assert "Index Cond: (created_at <=" in plan, plan
        # A walk from the newest row would touch thousands of buffers to get past 2,500 rows.
        assert touched < 50, plan
    else:
        assert "USING INDEX idx_audit_event_created_e5b726 (created_at<?)" in plan, plan


async def test_a_rare_kind_is_found_through_its_own_index(api: Harness, database_url: str) -> None:
    """Five role changes older than thousands of refreshes: their page does not read those."""
    for n in range(5):
        await AuditEvent.create(kind="role_changed", created_at=START - timedelta(days=1, hours=n))
    postgres = await load_refreshes(database_url)
    query = events_page_query(None, ["role_changed"], 50, None)

    assert [e.created_at for e in await query] == [
        START - timedelta(days=1, hours=n) for n in range(5)
    ]
    plan, touched = await explained(database_url, query.sql(params_inline=True))
    if postgres:
        assert "idx_audit_event_kind_d247f5" in plan, plan
        assert touched < 20, plan
    else:
        assert "USING INDEX idx_audit_event_kind_d247f5 (kind=?)" in plan, plan
