"""Connections to PostgreSQL: a pool for reads, the writer's transactions and
migrations (what `--db` names, and the URL without its password: url.py).

asyncpg speaks the protocol on the event loop itself: no thread hop, and a
batch of upserts is pipelined (`executemany`), one round trip per table.
"""

from __future__ import annotations

import asyncpg

# Reads of the API and the writer's transactions share the pool; the writer
# holds at most one connection at a time. No floor: asyncpg restores a floor
# by reconnecting in the background, and once the database is lost it would
# log a traceback every retry (a server that lost its database stays
# NOT_SERVING; the store's pinger has said why, once).
POOL_MIN = 0
POOL_MAX = 10
# Seconds to wait for a connection or a statement before the database counts as lost.
CONNECT_TIMEOUT = 10.0


async def open_pool(dsn: str) -> asyncpg.Pool:
    """A pool of connections; raises what asyncpg raises when it cannot connect."""
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=POOL_MIN,
        max_size=POOL_MAX,
        timeout=CONNECT_TIMEOUT,
        command_timeout=None,
        # Statements are few and fixed: prepared once per connection.
        statement_cache_size=256,
    )
    return pool
