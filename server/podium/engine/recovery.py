"""Recovery after a restart: every unfinished run resumes, in the background,
so that the server answers (health, GetRun) meanwhile.

Runs are read a batch at a time (each with its steps, attempts and last event
sequence, in one read off the event loop), not one query per run: a restart
over a thousand runs then costs a few reads, not thousands of round trips.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from podium.core.model import RunView
from podium.engine.ports import RunStore

log = logging.getLogger("podium.engine")

# Runs per read: big enough that reads are few, small enough that one batch's
# decoding (off the loop) stays short.
RECOVERY_BATCH = 200
# Runs resumed between two yields to the event loop, so that RPCs get in.
RESUMED_PER_YIELD = 50


async def recover(
    store: RunStore,
    resume: Callable[[RunView], Awaitable[None]],
    closed: Callable[[], bool],
    *,
    batch: int = RECOVERY_BATCH,
    prepare: Callable[[list[RunView]], Awaitable[None]] | None = None,
) -> int:
    """Calls `resume(view)` for every unfinished run, oldest first, until
    `closed()`; a run that fails to resume is logged and skipped. Returns how
    many runs it read. `prepare(views)`, awaited before a batch is resumed,
    reads what its runs need all at once (reads issued together share the
    trips to the database that one run at a time would each pay); if it
    fails, the batch's runs read for themselves."""
    after: tuple[float, str] | None = None
    count = 0
    while not closed():
        views = await store.unfinished_runs(batch, after=after)
        if not views:
            break
        if not count:
            log.info("resuming unfinished runs")
        if prepare is not None:
            try:
                await prepare(views)
            except Exception:
                log.exception(
                    "could not read ahead for %d runs; resuming them one by one", len(views)
                )
        for index, view in enumerate(views, start=1):
            if closed():
                return count
            try:
                await resume(view)
            except Exception:
                run_id = view.run.run_id
                log.exception("could not resume run %s", run_id, extra={"run_id": run_id})
            count += 1
            if index % RESUMED_PER_YIELD == 0:
                await asyncio.sleep(0)
        last = views[-1].run
        after = (last.create_time, last.run_id)
        await asyncio.sleep(0)
    if count:
        log.info("resumed %d unfinished runs", count)
    return count
