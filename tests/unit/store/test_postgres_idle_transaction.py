"""A server stopped in the middle of a transaction (SIGSTOP, a paused VM) does
not hold its locks forever: PostgreSQL ends its session once it has been idle
inside the transaction for IDLE_IN_TRANSACTION_S, and the other servers of the
cluster get the lease lock it held (tests/e2e/test_cluster_failover.py froze a
server inside one and its run was never taken over)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from podium.store.postgres.cluster import LEASE_LOCK
from podium.store.postgres.connection import IDLE_IN_TRANSACTION_S, open_pool


async def test_a_stopped_server_s_transaction_gives_up_its_locks(postgres_db: str) -> None:
    # The stopped server's pool, with a short timeout so the test is quick.
    stopped = await open_pool(postgres_db, idle_in_transaction=0.5)
    running = await open_pool(postgres_db)
    try:
        holder = await stopped.acquire()
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT pg_advisory_xact_lock($1)", LEASE_LOCK)
        # The holder does nothing more: the other server still gets the lock.
        async with running.acquire() as conn, conn.transaction():
            async with asyncio.timeout(30):
                await conn.execute("SELECT pg_advisory_xact_lock($1)", LEASE_LOCK)
        # The stopped server, thawed, finds its session ended, not its transaction going on.
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            await holder.execute("SELECT 1")
    finally:
        # Closed at once: a graceful close would wait for the holder's transaction.
        stopped.terminate()
        running.terminate()


async def test_every_pooled_session_has_the_timeout(postgres_db: str) -> None:
    pool = await open_pool(postgres_db)
    try:
        shown = await pool.fetchval("SHOW idle_in_transaction_session_timeout")
        assert shown == f"{round(IDLE_IN_TRANSACTION_S)}s"
    finally:
        await pool.close()
