"""The single writer: every write goes through one connection and is batched
(group commit, see podium.store.group_commit).

A batch is one call on the connection's thread (BEGIN IMMEDIATE, every
statement and upsert, COMMIT, see `commit_batch`): one hop to the thread and
one wake-up of the event loop per commit, which is what a chain of steps
waits for between one step's end and the next step's agent. The batch is on
the thread as soon as it is taken, and the previous batches' held callbacks
run once its rows are written, so they overlap its fsync without keeping the
thread from the interpreter lock it needs to write them (see the order of
work in podium.store.group_commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from podium.core.errors import PodiumError, ResourceExhausted, Unavailable
from podium.store.codec import ATTEMPT_COLUMNS, ITEM_COLUMNS, RUN_COLUMNS, STEP_COLUMNS
from podium.store.group_commit import Batch, GroupCommitWriter, Statement
from podium.store.sqlite.connection import ThreadConnection
from podium.store.sqlite.fence import INSERT_NUMBERED_EVENT, RunFence

log = logging.getLogger("podium.store")


def storage_failure(error: Exception) -> PodiumError:
    """A failed write as callers see it: RESOURCE_EXHAUSTED when the disk
    (or the file-size limit) is full, UNAVAILABLE for any other I/O fault."""
    text = str(error) or type(error).__name__
    if isinstance(error, sqlite3.OperationalError) and "full" in text:
        return ResourceExhausted(f"the database is full: {text}", reason="STORAGE_FULL")
    return Unavailable(f"the database cannot be written: {text}", reason="STORAGE_UNAVAILABLE")


def _upsert(table: str, columns: str, key: str) -> str:
    names = [c.strip() for c in columns.split(",")]
    keys = {k.strip() for k in key.split(",")}
    updates = ", ".join(f"{n} = excluded.{n}" for n in names if n not in keys)
    marks = ", ".join("?" for _ in names)
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({marks}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )


UPSERT_RUN = _upsert("runs", RUN_COLUMNS, "run_id")
UPSERT_STEP = _upsert("steps", STEP_COLUMNS, "run_id, step_id")
UPSERT_ATTEMPT = _upsert("attempts", ATTEMPT_COLUMNS, "run_id, step_id, item, number")
UPSERT_ITEM = _upsert("items", ITEM_COLUMNS, "run_id, step_id, item")
INSERT_EVENT = "INSERT INTO events (run_id, sequence, time, type, body) VALUES (?, ?, ?, ?, ?)"


def commit_batch(
    conn: sqlite3.Connection,
    statements: list[Statement],
    runs: list[tuple[Any, ...]],
    steps: list[tuple[Any, ...]],
    attempts: list[tuple[Any, ...]],
    items: list[tuple[Any, ...]],
    events: list[tuple[Any, ...]],
    fence: RunFence | None = None,
    before_commit: Callable[[], None] | None = None,
) -> set[str]:
    """One transaction, all of it or nothing (runs on the connection's thread);
    returns the runs whose rows a fence left out (cluster mode, see fence.py).

    Statements come first: a DELETE of a run then removes what earlier batches
    wrote, and `delete_runs` flushes before, so nothing of it comes back; a new
    run's owner row is in place before the fence looks. `before_commit` is
    called once every row is written, just before COMMIT (whose fsync needs no
    interpreter lock)."""
    conn.execute("BEGIN IMMEDIATE")
    fenced: set[str] = set()
    try:
        for sql, params in statements:
            conn.execute(sql, params)
        if fence is not None:
            run_ids = {row[0] for rows in (runs, steps, attempts, items, events) for row in rows}
            fenced = fence.fenced_runs(conn, run_ids)
            if fenced:
                runs, steps, attempts, items, events = (
                    [row for row in rows if row[0] not in fenced]
                    for rows in (runs, steps, attempts, items, events)
                )
        if runs:
            conn.executemany(UPSERT_RUN, runs)
        if steps:
            conn.executemany(UPSERT_STEP, steps)
        if attempts:
            conn.executemany(UPSERT_ATTEMPT, attempts)
        if items:
            conn.executemany(UPSERT_ITEM, items)
        if events:
            if fence is None:
                conn.executemany(INSERT_EVENT, events)
            else:
                conn.executemany(INSERT_NUMBERED_EVENT, fence.number_events(conn, events))
        if before_commit is not None:
            before_commit()
        conn.execute("COMMIT")
        return fenced
    except BaseException:
        if conn.in_transaction:
            try:
                conn.rollback()
            except Exception:
                log.exception("rollback failed")
        raise


class Writer(GroupCommitWriter):
    """Group commit on SQLite: a batch is one call on the connection's thread."""

    def __init__(self, conn: ThreadConnection, fence: RunFence | None = None) -> None:
        super().__init__()
        self._conn = conn
        # Cluster mode: run writes are fenced by epoch, events numbered (fence.py).
        self.fence = fence
        # Told (on the event loop, before the batch's callbacks run) which runs
        # a batch left out: this server no longer owns them.
        self.on_fenced: Callable[[set[str]], None] | None = None

    # Held callbacks run once the batch's rows are written (see _start_commit).
    releases_held_itself = True

    def _start_commit(self, batch: Batch) -> Awaitable[None]:
        # On the connection's thread at once. The previous batches' held
        # callbacks (encoding and sending events) run once this batch's rows are
        # written, while its COMMIT waits for the disk: run any earlier, they
        # would hold the interpreter lock the thread needs to write the rows
        # (about 0.2 ms more per commit on a chain, measured).
        loop = asyncio.get_running_loop()

        def release_held() -> None:
            # Nothing is added to the held callbacks while a batch commits (only
            # its own settling adds): with none, the loop need not be woken.
            if not self._held:
                return
            # A closed loop raises RuntimeError: nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._release_held)

        committing = self._conn.call(
            commit_batch,
            batch.statements,
            list(batch.runs.values()),
            list(batch.steps.values()),
            list(batch.attempts.values()),
            list(batch.items.values()),
            batch.events,
            self.fence,
            release_held,
        )
        return self._report_fenced(committing)

    def _failure(self, error: Exception) -> PodiumError:
        return storage_failure(error)

    async def _report_fenced(self, committing: Awaitable[set[str]]) -> None:
        fenced = await committing
        if fenced and self.on_fenced is not None:
            try:
                self.on_fenced(fenced)
            except Exception:
                log.exception("fenced-run callback failed")
