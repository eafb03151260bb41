"""A batch that PostgreSQL rolls back to break a deadlock (cluster mode: two
servers' settlements take the same budget_spend rows in different orders) is
committed again, whole and once, and the writer stays usable."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg

from podium.store.postgres.governance_store import PostgresGovernanceStore
from podium.store.postgres.store import PostgresStore


async def test_a_batch_rolled_back_by_a_deadlock_commits_again(postgres_db: str) -> None:
    store = PostgresStore(postgres_db, server_id="a")
    await store.open()
    other = await asyncpg.connect(postgres_db)
    try:
        governance = PostgresGovernanceStore(store)
        governance.add_budget_spend("x", "p", Decimal(1))
        governance.add_budget_spend("y", "p", Decimal(1))
        await governance.commit()

        # Another server's transaction holds y; the batch takes x, then waits for y.
        transaction = other.transaction()
        await transaction.start()
        await other.execute("UPDATE budget_spend SET spent_nanos = spent_nanos WHERE budget = 'y'")
        governance.add_budget_spend("x", "p", Decimal(2))
        governance.add_budget_spend("y", "p", Decimal(2))
        committing = asyncio.ensure_future(governance.commit())
        await asyncio.sleep(0.3)
        # ... and now wants x: a cycle. One side is rolled back.
        try:
            await other.execute(
                "UPDATE budget_spend SET spent_nanos = spent_nanos WHERE budget = 'x'"
            )
        except asyncpg.exceptions.DeadlockDetectedError:
            await transaction.rollback()
        else:
            await transaction.commit()
        await committing

        spent = await governance.budget_spend()
        assert spent == {("x", "p"): Decimal(3), ("y", "p"): Decimal(3)}
        assert store.check() is None
    finally:
        await other.close()
        await store.close()
