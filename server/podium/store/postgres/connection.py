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
# A server stopped in the middle of a transaction (frozen by SIGSTOP, a paused
# VM, a debugger) would hold that transaction's locks for as long as it stays
# stopped: the cluster's lease lock and event-numbering lock (advisory, held to
# the transaction's end) and the rows it wrote. Every other server would wait
# on them, and the stopped server's runs would never be taken over. PostgreSQL
# ends a session idle inside a transaction for this long. None of ours waits
# that long between two statements (they are one turn of the event loop
# apart), and it is shorter than the default lease (engine/cluster.py).
IDLE_IN_TRANSACTION_S = 5.0


async def open_pool(dsn: str, idle_in_transaction: float = IDLE_IN_TRANSACTION_S) -> asyncpg.Pool:
    """A pool of connections; raises what asyncpg raises when it cannot connect."""
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=POOL_MIN,
        max_size=POOL_MAX,
        timeout=CONNECT_TIMEOUT,
        command_timeout=None,
        # Statements are few and fixed: prepared once per connection.
        statement_cache_size=256,
        server_settings={
            "idle_in_transaction_session_timeout": str(round(idle_in_transaction * 1000))
        },
    )
    return pool
