"""The writer: group commit (podium.store.group_commit) on PostgreSQL.

A batch is one transaction on a connection of the pool: the batch's
statements in order, then one pipelined `executemany` per table of upserts
and the events, then COMMIT. A chain of steps waits for one such commit
between a step's end and the next step's agent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from podium.core.errors import PodiumError, ResourceExhausted, Unavailable
from podium.store.codec import ATTEMPT_COLUMNS, ITEM_COLUMNS, STEP_COLUMNS
from podium.store.group_commit import Batch, GroupCommitWriter
from podium.store.postgres.codec import RUN_COLUMNS
from podium.store.postgres.fence import INSERT_NUMBERED_EVENT, PostgresFence

log = logging.getLogger("podium.store")

# Tries of a batch that PostgreSQL rolled back to break a deadlock.
DEADLOCK_TRIES = 3

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
    def __init__(self, pool: asyncpg.Pool, fence: PostgresFence | None = None) -> None:
        super().__init__()
        self._pool = pool
        # Cluster mode: run writes are fenced by epoch, events numbered (fence.py).
        self.fence = fence
        # Told (before the batch's callbacks run) which runs a batch left out:
        # this server no longer owns them.
        self.on_fenced: Callable[[set[str]], None] | None = None

    def _start_commit(self, batch: Batch) -> Awaitable[None]:
        # A task, so the transaction is under way while held callbacks run.
        return asyncio.ensure_future(self._commit(batch))

    async def _commit(self, batch: Batch) -> None:
        for attempt in range(1, DEADLOCK_TRIES + 1):
            try:
                fenced = await self._transaction(batch)
                break
            except asyncpg.exceptions.DeadlockDetectedError:
                # Cluster mode: two servers' batches took the same rows (budget
                # spend) in different orders and PostgreSQL rolled this one back
                # whole; the batch is the same, so it goes again.
                if attempt == DEADLOCK_TRIES:
                    raise
                log.warning("a batch was rolled back by a deadlock; committing it again")
        if fenced and self.on_fenced is not None:
            try:
                self.on_fenced(fenced)
            except Exception:
                log.exception("fenced-run callback failed")

    async def _transaction(self, batch: Batch) -> set[str]:
        # Statements come first: a DELETE of a run then removes what earlier
        # batches wrote, and `delete_runs` flushes before, so nothing of it comes
        # back; a new run's owner row is in place before the fence looks.
        runs = list(batch.runs.values())
        steps = list(batch.steps.values())
        attempts = list(batch.attempts.values())
        items = list(batch.items.values())
        events = batch.events
        numbered: list[tuple[Any, ...]] = []
        try:
            return await self._write_batch(batch, runs, steps, attempts, items, events, numbered)
        except BaseException:
            if numbered and self.fence is not None:
                self.fence.unwrite(numbered[0][-1])
            raise

    async def _write_batch(
        self,
        batch: Batch,
        runs: list[tuple[Any, ...]],
        steps: list[tuple[Any, ...]],
        attempts: list[tuple[Any, ...]],
        items: list[tuple[Any, ...]],
        events: list[tuple[Any, ...]],
        numbered: list[tuple[Any, ...]],
    ) -> set[str]:
        """The transaction; `numbered` gets the events' rows with their feed
        numbers (cluster mode) as soon as they are numbered."""
        fenced: set[str] = set()
        async with self._pool.acquire() as conn, conn.transaction():
            for sql, params in batch.statements:
                await conn.execute(sql, *params)
            fence = self.fence
            if fence is not None:
                run_ids = {
                    row[0] for rows in (runs, steps, attempts, items, events) for row in rows
                }
                fenced = await fence.fenced_runs(conn, run_ids)
                if fenced:
                    runs, steps, attempts, items, events = (
                        [row for row in rows if row[0] not in fenced]
                        for rows in (runs, steps, attempts, items, events)
                    )
            if runs:
                await conn.executemany(UPSERT_RUN, runs)
            if steps:
                await conn.executemany(UPSERT_STEP, steps)
            if attempts:
                await conn.executemany(UPSERT_ATTEMPT, attempts)
            if items:
                await conn.executemany(UPSERT_ITEM, items)
            if events:
                if fence is None:
                    await conn.executemany(INSERT_EVENT, events)
                else:
                    numbered.extend(await fence.number_events(conn, events))
                    await conn.executemany(INSERT_NUMBERED_EVENT, numbered)
        return fenced

    def _failure(self, error: Exception) -> PodiumError:
        return storage_failure(error)
