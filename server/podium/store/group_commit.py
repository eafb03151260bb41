"""Group commit, shared by every backend: writes are submitted without
waiting, batched, and committed by one task, one transaction per batch.

Writes accumulate while the previous batch commits, and the next batch takes
all of them in one transaction, so throughput does not hinge on one durable
commit per event. Row writes are upserts keyed by primary key, so several
updates of the same step within one batch collapse into the last one.
Callbacks registered with a write run after its commit, in registration
order: that is how events become visible to subscribers only once they are
durable. Once a batch fails, every later commit fails with it.

Order of work after a commit (the critical path of a chain): the commit's
waiters are resolved first, and its callbacks (publishing its events to
subscribers) are held until the work those waiters released has handed the
writer its next batch and that batch is on its way to the database, or until
the loop has gone a few turns without one. Encoding and sending events to
watchers then overlaps the next commit instead of delaying the next step. A
callback still never runs before its own batch is committed, and callbacks
run in commit order.

A backend supplies `_start_commit(batch)` (one transaction: the batch's
statements first, then its upserts and events, all or nothing; started at
once, awaited later) and `_failure(error)` (how a failed commit reads to
callers); the rest is the same for all. A backend whose commit runs in a
thread of its own may release the held callbacks itself, once that thread no
longer needs the interpreter lock (`releases_held_itself`, SQLite does).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from podium.core.errors import PodiumError

log = logging.getLogger("podium.store")

# A statement of the backend's own SQL with its parameters.
Statement = tuple[str, tuple[Any, ...]]
# Turns of the event loop a commit's callbacks wait for the next batch (see
# GroupCommitWriter._wait_briefly): each turn runs every callback ready at its start.
HOLD_TURNS = 4
# Turns of the event loop the next batch waits, after a commit that released
# waiters, for the work they do next. A step whose attempt is durable resumes
# in the turn after the commit, runs its agent, records its end and launches
# its dependents' tasks, which record their attempts a turn later: with this
# turn and the one before every take, both are in the next batch. Without it,
# when other runs' writes had set the wake already, the end committed alone
# and the dependents' attempts waited a commit more (W4's diamonds took nine
# sequential commits instead of five).
RELEASE_TURNS = 1


class Batch:
    """What one transaction commits, and who waits for it."""

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
        self.statements: list[Statement] = []
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

    def row_count(self) -> int:
        return (
            len(self.statements)
            + len(self.runs)
            + len(self.steps)
            + len(self.attempts)
            + len(self.items)
            + len(self.events)
        )

    def __bool__(self) -> bool:
        return self.has_writes() or bool(self.waiters or self.after_commit)


class GroupCommitWriter:
    def __init__(self, name: str = "podium-store-writer") -> None:
        self._name = name
        self._batch = Batch()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # After-commit callbacks of committed batches, not yet run (see the
        # module doc): they run once the next batch is submitted, or soon.
        self._held: list[Callable[[], None]] = []
        # Increments when a batch is taken for commit: writes submitted under
        # the same id commit together.
        self.batch_id = 0
        # Cumulative, for metrics: batches committed, their rows, seconds committing.
        self.commits = 0
        self.committed_rows = 0
        self.commit_seconds = 0.0
        # Set once a batch fails or the database is lost: from then on every
        # commit fails with it. What the engine holds in memory may include
        # writes that never reached the database, so acknowledging anything
        # more could acknowledge what was not committed.
        self.failure: PodiumError | None = None

    # -- what a backend supplies --------------------------------------------------

    def _start_commit(self, batch: Batch) -> Awaitable[None]:
        """Starts committing the batch's writes in one transaction, all or nothing, and
        returns what to await for its outcome (the work must be under way on return, so
        that held callbacks overlap it)."""
        raise NotImplementedError

    def _failure(self, error: Exception) -> PodiumError:
        """A failed commit as callers see it."""
        raise NotImplementedError

    # True when `_start_commit` has `_release_held` called on the event loop
    # itself, at the moment that best overlaps the commit; False: right after
    # `_start_commit` returns. Either way before the batch is settled.
    releases_held_itself = False

    # -- lifecycle ------------------------------------------------------------------

    def fail(self, failure: PodiumError) -> None:
        """Refuses every later commit with `failure` (the first one stays)."""
        if self.failure is None:
            self.failure = failure
            log.error("the store refuses writes from now on: %s", failure.message)
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self._name)

    async def close(self) -> None:
        """Commits everything submitted so far, then stops."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task

    # -- submissions are synchronous: the caller decides whether to await commit()

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

    # -- the committing task --------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            if self._held:
                await self._wait_briefly()
            await self._wake.wait()
            # One more turn of the event loop before taking the batch: work
            # made runnable by the same event (the next step of a chain, whose
            # attempt start must be durable before its agent runs) joins this
            # commit instead of waiting for it and paying its own.
            await asyncio.sleep(0)
            self._wake.clear()
            batch, self._batch = self._batch, Batch()
            self.batch_id += 1
            if batch:
                await self._write(batch)
                if batch.waiters:
                    for _ in range(RELEASE_TURNS):
                        await asyncio.sleep(0)
            if self._closing and not self._batch:
                self._release_held()
                return

    async def _wait_briefly(self) -> None:
        """Callbacks are held: waits a few turns of the event loop for the work
        the last commit released (a chain's next step takes three: its task
        resumes, launches the next step's task, which records its attempt and
        asks for a commit); with nothing asked for by then, runs them."""
        for _ in range(HOLD_TURNS):
            if self._wake.is_set():
                return
            await asyncio.sleep(0)
        if not self._wake.is_set():
            self._release_held()

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for callback in held:
            try:
                callback()
            except Exception:
                log.exception("after-commit callback failed")

    async def _write(self, batch: Batch) -> None:
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
        try:
            committing = self._start_commit(batch)
            # The previous batches are committed: their callbacks run while
            # this one is on its way to the database.
            if not self.releases_held_itself:
                self._release_held()
            await committing
            self.commits += 1
            self.committed_rows += batch.row_count()
            self.commit_seconds += time.perf_counter() - began
        except Exception as exc:  # a failed batch must not kill the writer
            log.error("store batch failed; rolled back", exc_info=exc)
            error = self._failure(exc)
        if error is not None:
            self.fail(error)
        self._settle(batch, error)

    def _settle(self, batch: Batch, error: PodiumError | None) -> None:
        for waiter in batch.waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)
        if error is None:
            self._held += batch.after_commit
        else:
            # Callbacks of batches committed before the failure still run.
            self._release_held()
