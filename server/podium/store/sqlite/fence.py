"""Fencing of run writes in cluster mode, applied inside each write batch.

Each unfinished run has one owner and a fencing epoch in `run_owners`; a server
writes a run only while the row still names it with the epoch it took. The
check runs in the batch's own transaction (BEGIN IMMEDIATE serializes the
writers of every process on the file), so a server that lost a run (its lease
expired and another took the run over, bumping the epoch) cannot slip one late
write in: that run's rows are left out of the batch and the server is told
(`RunFence.fenced`), while the other runs' rows commit.

The fence also gives events their database-wide order (`events.feed`), which
other servers poll to stream events of runs they do not own, and remembers
which feed numbers this server wrote, so that its own poller skips them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from typing import Any

# SQLite's default limit on host parameters is 32766; stay well below.
_CHUNK = 500


class RunFence:
    def __init__(self, server_id: str) -> None:
        self.server_id = server_id
        # run_id -> epoch held; written on the event loop, read on the writer's
        # thread (a dict get is atomic under the GIL).
        self.owned: dict[str, int] = {}
        # (first, last) feed numbers this server's batches assigned.
        self._written: list[tuple[int, int]] = []
        self._lock = threading.Lock()

    def fenced_runs(self, conn: sqlite3.Connection, run_ids: Iterable[str]) -> set[str]:
        """The runs among `run_ids` whose owner row is missing or names another
        server or another epoch than the one held (inside the batch's transaction)."""
        ids = list(run_ids)
        # A run without an owner row is fenced too: only a claim (a new run's row
        # rides its first batch, ahead of this check) lets a server write a run.
        fenced: set[str] = set(ids)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ", ".join("?" for _ in chunk)
            for run_id, owner, epoch in conn.execute(
                f"SELECT run_id, owner, epoch FROM run_owners WHERE run_id IN ({marks})", chunk
            ):
                if owner == self.server_id and epoch == self.owned.get(run_id):
                    fenced.discard(run_id)
        return fenced

    def number_events(
        self, conn: sqlite3.Connection, events: list[tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        """The event rows with their feed numbers, next after the highest in the
        database (the batch's transaction holds the write lock: no one else
        numbers meanwhile, and no reader sees a number before those below it)."""
        if not events:
            return events
        top = conn.execute("SELECT MAX(feed) FROM events WHERE feed IS NOT NULL").fetchone()[0]
        base = int(top or 0)
        with self._lock:
            self._written.append((base + 1, base + len(events)))
        return [(*row, base + index) for index, row in enumerate(events, start=1)]

    def written_here(self, feed: int) -> bool:
        with self._lock:
            return any(first <= feed <= last for first, last in self._written)

    def forget_written(self, up_to: int) -> None:
        """Drops the ranges at or below `up_to` (the poller has passed them)."""
        with self._lock:
            self._written = [(a, b) for a, b in self._written if b > up_to]


INSERT_NUMBERED_EVENT = (
    "INSERT INTO events (run_id, sequence, time, type, body, feed) VALUES (?, ?, ?, ?, ?, ?)"
)
