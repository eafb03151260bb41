"""The single writer: every write goes through one connection and is batched.

Writes accumulate while the previous batch commits, and the next batch takes
all of them in one transaction (group commit), so throughput does not hinge on
one fsync per event. Row writes are upserts keyed by primary key, so several
updates of the same step within one batch collapse into the last one.
Callbacks registered with a write run after its commit: that is how events
become visible to subscribers only once they are durable.

A batch is one call on the connection's thread (BEGIN IMMEDIATE, every
statement and upsert, COMMIT, see `commit_batch`): one hop to the thread and
one wake-up of the event loop per commit, which is what a chain of steps
waits for between one step's end and the next step's agent.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from podium.core.errors import PodiumError, ResourceExhausted, Unavailable
from podium.store.sqlite.codec import ATTEMPT_COLUMNS, ITEM_COLUMNS, RUN_COLUMNS, STEP_COLUMNS
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


class _Batch:
    __slots__ = (
        "after_commit",
        "attempts",
        "events",
        "items",
        "runs",
        "statements",
        "steps",
        "waiters",
    )

    def __init__(self) -> None:
        self.statements: list[tuple[str, tuple[Any, ...]]] = []
        self.runs: dict[str, tuple[Any, ...]] = {}
        self.steps: dict[tuple[str, str], tuple[Any, ...]] = {}
        self.attempts: dict[tuple[str, str, int, int], tuple[Any, ...]] = {}
        self.items: dict[tuple[str, str, int], tuple[Any, ...]] = {}
        self.events: list[tuple[Any, ...]] = []
        self.waiters: list[asyncio.Future[None]] = []
        self.after_commit: list[Callable[[], None]] = []

    def has_writes(self) -> bool:
        return bool(
            self.statements or self.runs or self.steps or self.attempts or self.items or self.events
        )

    def __bool__(self) -> bool:
        return bool(
            self.statements
            or self.runs
            or self.steps
            or self.attempts
            or self.items
            or self.events
            or self.waiters
            or self.after_commit
        )


def commit_batch(
    conn: sqlite3.Connection,
    statements: list[tuple[str, tuple[Any, ...]]],
    runs: list[tuple[Any, ...]],
    steps: list[tuple[Any, ...]],
    attempts: list[tuple[Any, ...]],
    items: list[tuple[Any, ...]],
    events: list[tuple[Any, ...]],
    fence: RunFence | None = None,
) -> set[str]:
    """One transaction, all of it or nothing (runs on the connection's thread);
    returns the runs whose rows a fence left out (cluster mode, see fence.py).

    Statements come first: a DELETE of a run then removes what earlier batches
    wrote, and `delete_runs` flushes before, so nothing of it comes back; a new
    run's owner row is in place before the fence looks."""
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
        conn.execute("COMMIT")
        return fenced
    except BaseException:
        if conn.in_transaction:
            try:
                conn.rollback()
            except Exception:
                log.exception("rollback failed")
        raise


class Writer:
    def __init__(self, conn: ThreadConnection, fence: RunFence | None = None) -> None:
        self._conn = conn
        # Cluster mode: run writes are fenced by epoch, events numbered (fence.py).
        self.fence = fence
        # Told (on the event loop, before the batch's callbacks run) which runs
        # a batch left out: this server no longer owns them.
        self.on_fenced: Callable[[set[str]], None] | None = None
        self._batch = _Batch()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # Increments when a batch is taken for commit: writes submitted under
        # the same id commit together.
        self.batch_id = 0
        # Cumulative, for metrics: batches committed, their rows, seconds committing.
        self.commits = 0
        self.committed_rows = 0
        self.commit_seconds = 0.0
        # Set once a batch fails or the database is lost: from then on every
        # commit fails with it. What the engine holds in memory may include
        # writes that never reached the disk, so acknowledging anything more
        # could acknowledge what was not committed.
        self.failure: PodiumError | None = None

    def fail(self, failure: PodiumError) -> None:
        """Refuses every later commit with `failure` (the first one stays)."""
        if self.failure is None:
            self.failure = failure
            log.error("the store refuses writes from now on: %s", failure.message)
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="podium-store-writer")

    async def close(self) -> None:
        """Commits everything submitted so far, then stops."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    # Submissions are synchronous: the caller decides whether to await commit().

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        self._batch.statements.append((sql, params))
        self._wake.set()

    def put_run(self, row: tuple[Any, ...]) -> None:
        self._batch.runs[row[0]] = row
        self._wake.set()

    def put_step(self, row: tuple[Any, ...]) -> None:
        self._batch.steps[(row[0], row[1])] = row
        self._wake.set()

    def put_attempt(self, row: tuple[Any, ...]) -> None:
        self._batch.attempts[(row[0], row[1], row[2], row[3])] = row
        self._wake.set()

    def put_item(self, row: tuple[Any, ...]) -> None:
        self._batch.items[(row[0], row[1], row[2])] = row
        self._wake.set()

    def put_event(self, row: tuple[Any, ...]) -> None:
        self._batch.events.append(row)
        self._wake.set()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Runs `callback` once everything submitted so far is committed."""
        self._batch.after_commit.append(callback)
        self._wake.set()

    def commit(self) -> asyncio.Future[None]:
        """A future resolved when everything submitted so far is committed."""
        if self._closing and self._task is not None and self._task.done():
            raise RuntimeError("the store is closed")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.failure is not None:
            future.set_exception(self.failure)
            return future
        self._batch.waiters.append(future)
        self._wake.set()
        return future

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            # One more turn of the event loop before taking the batch: work
            # made runnable by the same event (the next step of a chain, whose
            # attempt start must be durable before its agent runs) joins this
            # commit instead of waiting for it and paying its own fsync.
            await asyncio.sleep(0)
            self._wake.clear()
            batch, self._batch = self._batch, _Batch()
            self.batch_id += 1
            if batch:
                await self._write(batch)
            if self._closing and not self._batch:
                return

    async def _write(self, batch: _Batch) -> None:
        error: PodiumError | None = self.failure
        if error is not None:
            self._settle(batch, error)
            return
        if not batch.has_writes():
            # Only waiters and callbacks: what they wait for committed with
            # the batches before this one.
            self._settle(batch, None)
            return
        began = time.perf_counter()
        fenced: set[str] = set()
        try:
            fenced = await self._conn.call(
                commit_batch,
                batch.statements,
                list(batch.runs.values()),
                list(batch.steps.values()),
                list(batch.attempts.values()),
                list(batch.items.values()),
                batch.events,
                self.fence,
            )
            self.commits += 1
            self.committed_rows += (
                len(batch.statements)
                + len(batch.runs)
                + len(batch.steps)
                + len(batch.attempts)
                + len(batch.items)
                + len(batch.events)
            )
            self.commit_seconds += time.perf_counter() - began
        except Exception as exc:  # a failed batch must not kill the writer
            log.error("store batch failed; rolled back", exc_info=exc)
            error = storage_failure(exc)
        if error is not None:
            self.fail(error)
        if fenced and self.on_fenced is not None:
            try:
                self.on_fenced(fenced)
            except Exception:
                log.exception("fenced-run callback failed")
        self._settle(batch, error)

    def _settle(self, batch: _Batch, error: PodiumError | None) -> None:
        for waiter in batch.waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)
        if error is None:
            for callback in batch.after_commit:
                try:
                    callback()
                except Exception:
                    log.exception("after-commit callback failed")
