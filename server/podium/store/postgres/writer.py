"""The writer: group commit (podium.store.group_commit) on PostgreSQL.

A batch is one transaction on a connection of the pool: the batch's
statements in order, then one pipelined `executemany` per table of upserts
and the events, then COMMIT. A chain of steps waits for one such commit
between a step's end and the next step's agent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import asyncpg

from podium.core.errors import PodiumError, ResourceExhausted, Unavailable
from podium.store.codec import ATTEMPT_COLUMNS, ITEM_COLUMNS, STEP_COLUMNS
from podium.store.group_commit import Batch, GroupCommitWriter
from podium.store.postgres.codec import RUN_COLUMNS

# SQLSTATE class 53: insufficient resources (disk full, out of memory, too many connections).
_INSUFFICIENT_RESOURCES = "53"


def storage_failure(error: Exception) -> PodiumError:
    """A failed write as callers see it: RESOURCE_EXHAUSTED when the database
    is out of space or memory, UNAVAILABLE for anything else (lost connection)."""
    text = str(error) or type(error).__name__
    state = getattr(error, "sqlstate", None) or ""
    if isinstance(error, asyncpg.PostgresError) and state.startswith(_INSUFFICIENT_RESOURCES):
        return ResourceExhausted(f"the database is full: {text}", reason="STORAGE_FULL")
    return Unavailable(f"the database cannot be written: {text}", reason="STORAGE_UNAVAILABLE")


def upsert(table: str, columns: str, key: str) -> str:
    names = [c.strip() for c in columns.split(",")]
    keys = {k.strip() for k in key.split(",")}
    updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in names if n not in keys)
    marks = ", ".join(f"${number}" for number in range(1, len(names) + 1))
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({marks}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )


UPSERT_RUN = upsert("runs", RUN_COLUMNS, "run_id")
UPSERT_STEP = upsert("steps", STEP_COLUMNS, "run_id, step_id")
UPSERT_ATTEMPT = upsert("attempts", ATTEMPT_COLUMNS, "run_id, step_id, item, number")
UPSERT_ITEM = upsert("items", ITEM_COLUMNS, "run_id, step_id, item")
INSERT_EVENT = "INSERT INTO events (run_id, sequence, time, type, body) VALUES ($1, $2, $3, $4, $5)"


class Writer(GroupCommitWriter):
    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__()
        self._pool = pool

    def _start_commit(self, batch: Batch) -> Awaitable[None]:
        # A task, so the transaction is under way while held callbacks run.
        return asyncio.ensure_future(self._commit(batch))

    async def _commit(self, batch: Batch) -> None:
        # Statements come first: a DELETE of a run then removes what earlier
        # batches wrote, and `delete_runs` flushes before, so nothing of it comes back.
        async with self._pool.acquire() as conn, conn.transaction():
            for sql, params in batch.statements:
                await conn.execute(sql, *params)
            if batch.runs:
                await conn.executemany(UPSERT_RUN, list(batch.runs.values()))
            if batch.steps:
                await conn.executemany(UPSERT_STEP, list(batch.steps.values()))
            if batch.attempts:
                await conn.executemany(UPSERT_ATTEMPT, list(batch.attempts.values()))
            if batch.items:
                await conn.executemany(UPSERT_ITEM, list(batch.items.values()))
            if batch.events:
                await conn.executemany(INSERT_EVENT, batch.events)

    def _failure(self, error: Exception) -> PodiumError:
        return storage_failure(error)
