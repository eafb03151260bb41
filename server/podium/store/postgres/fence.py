"""Fencing of run writes in cluster mode on PostgreSQL, inside each write batch
(as podium.store.sqlite.fence does on a file).

The batch's transaction reads the owner rows of the runs it writes with
`FOR SHARE`: a takeover (an UPDATE of those rows, bumping the epoch) waits for
the batch to commit, or the batch waits for the takeover and then sees the new
owner. Either way a server that lost a run cannot slip one late write in: that
run's rows are left out of the batch and the server is told, while the other
runs' rows commit.

Events get their database-wide order (`events.feed`) under a transaction-level
advisory lock, held until COMMIT: no one numbers meanwhile, and no reader sees
a number before those below it are committed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A connection of the pool (the writer's batches) or one of its own.
Connection = asyncpg.Connection | PoolConnectionProxy
# pg_advisory_xact_lock key under which events are numbered ("podiumfd").
FEED_LOCK = 0x706F6469756D6664


class PostgresFence:
    def __init__(self, server_id: str) -> None:
        self.server_id = server_id
        # run_id -> epoch held.
        self.owned: dict[str, int] = {}
        # (first, last) feed numbers this server's batches assigned.
        self._written: list[tuple[int, int]] = []
        self._lock = threading.Lock()

    async def fenced_runs(self, conn: Connection, run_ids: Iterable[str]) -> set[str]:
        """The runs among `run_ids` whose owner row is missing or names another
        server or another epoch than the one held (inside the batch's transaction)."""
        ids = list(run_ids)
        fenced: set[str] = set(ids)
        if not ids:
            return fenced
        rows = await conn.fetch(
            "SELECT run_id, owner, epoch FROM run_owners WHERE run_id = ANY($1::text[]) "
            "ORDER BY run_id FOR SHARE",
            ids,
        )
        for run_id, owner, epoch in rows:
            if owner == self.server_id and epoch == self.owned.get(run_id):
                fenced.discard(run_id)
        return fenced

    async def number_events(
        self, conn: Connection, events: list[tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        """The event rows with their feed numbers, next after the highest committed."""
        if not events:
            return events
        await conn.execute("SELECT pg_advisory_xact_lock($1)", FEED_LOCK)
        top = await conn.fetchval("SELECT MAX(feed) FROM events WHERE feed IS NOT NULL")
        base = int(top or 0)
        with self._lock:
            self._written.append((base + 1, base + len(events)))
        return [(*row, base + index) for index, row in enumerate(events, start=1)]

    def unwrite(self, first: int) -> None:
        """Forgets the range that starts at `first`: its transaction rolled back,
        and those numbers go to the next batch that commits, maybe another server's."""
        with self._lock:
            self._written = [(a, b) for a, b in self._written if a != first]

    def written_here(self, feed: int) -> bool:
        with self._lock:
            return any(first <= feed <= last for first, last in self._written)

    def forget_written(self, up_to: int) -> None:
        """Drops the ranges at or below `up_to` (the poller has passed them)."""
        with self._lock:
            self._written = [(a, b) for a, b in self._written if b > up_to]


INSERT_NUMBERED_EVENT = (
    "INSERT INTO events (run_id, sequence, time, type, body, feed) VALUES ($1, $2, $3, $4, $5, $6)"
)
