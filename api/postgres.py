"""Keyturn's asyncpg connections: given back to the pool without asyncpg's reset query.

tortoise takes a connection from asyncpg's pool for every statement it runs outside a transaction,
and asyncpg resets each connection it is given back with a query of its own (`SELECT
pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;`): a second round trip for every
read. That query undoes session state that Keyturn never creates: it takes no advisory locks,
declares no cursors, listens to nothing (revocations travel through Redis) and never runs `SET`
outside a transaction (server settings are given when a connection opens). asyncpg still rolls
back a transaction left open on a returned connection; that part of the reset is not a query of
`get_reset_query`, the documented hook this overrides.
"""

from __future__ import annotations

import asyncpg


class PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    def get_reset_query(self) -> str:
        return ""
