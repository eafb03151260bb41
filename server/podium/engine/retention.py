"""Retention: deleting finished runs, on request and by age, and the
RerunRuns records whose originals are all gone.

A run is deleted only once it has ended: an active run is still written by its
executor, and deleting it under the executor's feet would leave half a run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Container

from podium.core.clock import Clock
from podium.core.errors import FailedPrecondition, NotFound
from podium.engine.ports import RunStore

log = logging.getLogger("podium.retention")

PAGE_SIZE = 500
MAX_INTERVAL = 3600.0
MIN_INTERVAL = 1.0


async def delete_run(store: RunStore, active: Container[str], run_id: str) -> None:
    """Deletes a finished run with its steps, attempts and events; `active`
    holds the runs being executed (never deleted under their executor)."""
    if run_id in active:
        raise FailedPrecondition(
            f"run {run_id!r} has not finished; cancel it first", reason="RUN_NOT_FINISHED"
        )
    status = await store.run_status(run_id)
    if status is None:
        raise NotFound(f"run {run_id!r} not found", reason="RUN_NOT_FOUND")
    state, _ = status
    if not state.is_final:
        # Not active but unfinished: recovery is about to resume it.
        raise FailedPrecondition(
            f"run {run_id!r} has not finished ({state.name}); cancel it first",
            reason="RUN_NOT_FINISHED",
        )
    if not await store.delete_runs([run_id]):
        # Deleted by a concurrent DeleteRun or the pruner since the read above.
        raise NotFound(f"run {run_id!r} not found", reason="RUN_NOT_FOUND")


def default_interval(max_age: float) -> float:
    """How often to prune: often enough that runs outlive `max_age` by at most
    a tenth of it, at most hourly, and never in a busy loop."""
    return max(MIN_INTERVAL, min(max_age / 10, MAX_INTERVAL))


class Pruner:
    """Deletes runs that ended more than `max_age` seconds ago, every `interval`."""

    def __init__(
        self,
        store: RunStore,
        active: Container[str],
        max_age: float,
        interval: float,
        *,
        clock: Clock,
        page_size: int = PAGE_SIZE,
    ) -> None:
        if max_age <= 0:
            raise ValueError("max_age must be positive")
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.store = store
        self.active = active
        self.max_age = max_age
        self.interval = interval
        self.clock = clock
        self.page_size = page_size
        self._task: asyncio.Task[None] | None = None

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._loop(), name="podium-pruner")
        return self._task

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _loop(self) -> None:
        # Prune first: a server restarted after a long pause catches up at once.
        while True:
            try:
                await self.prune_once()
            except Exception:
                # A failed pass (a busy database, say) must not end retention for good.
                log.exception("pruning runs failed; retrying in %.0fs", self.interval)
            await self.clock.sleep(self.interval)

    async def prune_once(self) -> int:
        """One pass: deletes every run that ended before now - max_age; how many."""
        cutoff = self.clock.now() - self.max_age
        store, active = self.store, self.active
        total = 0
        while True:
            run_ids = await store.finished_runs_before(cutoff, self.page_size)
            # A run whose final state is stored may still be in `active` for a
            # moment while its executor winds down; the next pass takes it.
            deletable = [run_id for run_id in run_ids if run_id not in active]
            deleted = await store.delete_runs(deletable)
            total += deleted
            if len(run_ids) < self.page_size or not deleted:
                break
            await asyncio.sleep(0)  # one page per turn: RPCs go in between
        if total:
            log.info("deleted %d runs that ended over %.0fs ago", total, self.max_age)
        # After the runs: a RerunRuns record goes once it is as old as the runs
        # retention deletes and none of its originals is left (every original
        # ended before the record was made, so by then retention took them all
        # unless something keeps one); while one exists a retry needs the record
        # to re-run the same originals.
        batches = await store.delete_rerun_batches_before(cutoff)
        if batches:
            log.info("deleted %d RerunRuns records older than %.0fs", batches, self.max_age)
        return total
