"""The keyset condition of the newest-first pages (sessions, audit events)."""

from __future__ import annotations

import uuid
from datetime import datetime

from tortoise.expressions import Q


def before_key(created: datetime, row_id: uuid.UUID) -> Q:
    """Rows after the keyset (created, row_id) in newest-first order: (created_at, id) <
    (created, row_id), written so that an index on (…, created_at, id) starts at the cursor.

    `created_at < c OR (created_at = c AND id < i)` says the same, but PostgreSQL takes no bound
    on the index from an OR: it walked from the newest row and filtered, so page N read N pages
    (15.8 ms against 0.04 for a page in the middle of 300,000 events). The leading
    `created_at <= c` is a bound it uses; the OR then only sorts out the rows of that same
    instant. (SQLite found the bound in either form.)
    """
    return Q(created_at__lte=created) & (Q(created_at__lt=created) | Q(id__lt=row_id))
