"""Newest-first pages by keyset (sessions, audit events): their condition and their order."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TypeVar

from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet

M = TypeVar("M", bound=Model)


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


def newest_first(
    query: QuerySet[M], first: int, after: tuple[datetime, uuid.UUID] | None
) -> QuerySet[M]:
    """One page of `query`, newest first, after the keyset `after`, plus one row (which tells
    that a next page follows); the order is the one `before_key` bounds."""
    if after is not None:
        query = query.filter(before_key(*after))
    return query.order_by("-created_at", "-id").limit(first + 1)
