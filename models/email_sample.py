"""How common a searched text is among the emails, from a sample of them.

A page of a search (`users(search: ...)`, models/users.py) first walks the email index from its
cursor when the text is common enough for that walk to fill the page; otherwise it asks the
suffix index. How common a text is comes from a sample of the emails, a few spans spread over
the table in storage order, taken again every SAMPLE_TTL seconds: a fixed cost (one to two
milliseconds), whatever the number of users. A rare text may be missing from the sample: it
then counts as held by nobody, which is near enough what it is.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tortoise import BaseDBAsyncClient

from models.statements import for_dialect

SAMPLE_SPANS = 16
SAMPLE_ROWS = 64
"""Consecutive rows a span of the sample reads on SQLite; on PostgreSQL a span is one page of
the table (some 40 to 100 users)."""

SAMPLE_TTL = 600.0
MAX_COUNTED = 4096
"""Texts whose share a sample remembers; past that it counts afresh."""


@dataclass
class EmailSample:
    emails: tuple[str, ...]
    taken: float
    _shares: dict[str, float] = field(default_factory=dict)

    def share(self, text: str) -> float:
        """The share of the sampled emails that hold `text`; an empty sample holds nothing."""
        known = self._shares.get(text)
        if known is None:
            if len(self._shares) >= MAX_COUNTED:
                self._shares.clear()
            holding = sum(1 for email in self.emails if text in email)
            known = self._shares[text] = holding / len(self.emails) if self.emails else 0.0
        return known


_samples: weakref.WeakKeyDictionary[BaseDBAsyncClient, EmailSample] = weakref.WeakKeyDictionary()


async def email_sample(
    conn: BaseDBAsyncClient, clock: Callable[[], float] = time.monotonic
) -> EmailSample:
    """This database's sample of emails, taken again once it is SAMPLE_TTL seconds old."""
    now = clock()
    sample = _samples.get(conn)
    if sample is None or now - sample.taken >= SAMPLE_TTL:
        emails = await _sample_emails(conn)
        sample = _samples[conn] = EmailSample(tuple(emails), now)
    return sample


async def _sample_emails(conn: BaseDBAsyncClient) -> list[str]:
    ranges: list[tuple[Any, Any]]
    if conn.capabilities.dialect == "postgres":
        # Pages of the table, read by their tuple ids (a TID range scan reads just that page).
        rows = await conn.execute_query_dict(
            "SELECT pg_relation_size('users') / current_setting('block_size')::int AS pages"
        )
        spans = _spread(int(rows[0]["pages"]), 1)
        ranges = [(f"({start},0)", f"({start + 1},0)") for start in spans]
        span_sql = 'SELECT "email" FROM "users" WHERE ctid >= ?::text::tid AND ctid < ?::text::tid'
    else:
        # Runs of rowids, the order SQLite stores the table in.
        rows = await conn.execute_query_dict('SELECT max(rowid) AS "last" FROM "users"')
        spans = _spread(int(rows[0]["last"] or 0), SAMPLE_ROWS)
        ranges = [(start + 1, start + SAMPLE_ROWS) for start in spans]
        span_sql = 'SELECT "email" FROM "users" WHERE rowid BETWEEN ? AND ?'
    if not ranges:
        return []
    sql = for_dialect(" UNION ALL ".join([span_sql] * len(ranges)), conn.capabilities.dialect)
    values = [value for pair in ranges for value in pair]
    return [row["email"] for row in await conn.execute_query_dict(sql, values)]


def _spread(size: int, span: int) -> list[int]:
    """Starts of SAMPLE_SPANS spans of `span` units evenly spread over `size` units from 0, the
    last one ending at `size`; when there is no room for that many apart, spans side by side
    over all of it."""
    if size <= 0:
        return []
    if size <= SAMPLE_SPANS * span:
        return list(range(0, size, span))
    return [(size - span) * k // (SAMPLE_SPANS - 1) for k in range(SAMPLE_SPANS)]
