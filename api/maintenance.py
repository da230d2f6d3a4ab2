"""Housekeeping: deleting long-dead sessions and old audit events, in batches."""

from __future__ import annotations

from datetime import timedelta

from api.clock import Clock, utc_now
from api.settings import Settings
from models.audit import delete_old_events
from models.sessions import delete_dead_sessions

BATCH_SIZE = 1000


async def prune(settings: Settings, clock: Clock = utc_now) -> tuple[int, int]:
    """Delete sessions dead for longer than the refresh lifetime and expired audit events.

    A pruned session's refresh tokens stay refused: refresh finds no session and answers
    INVALID_REFRESH_TOKEN, and the tokens themselves expired before their session was pruned.
    """
    now = clock()
    dead_before = now - timedelta(seconds=settings.refresh_token_ttl)
    sessions = 0
    while deleted := await delete_dead_sessions(dead_before, BATCH_SIZE):
        sessions += deleted
    events_before = now - timedelta(seconds=settings.audit_retention)
    events = 0
    while deleted := await delete_old_events(events_before, BATCH_SIZE):
        events += deleted
    return sessions, events
