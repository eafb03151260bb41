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
    fails, the batch's runs read for themselves. The next batch is read
    while one resumes; a failed read fails recovery once the batches read
    before it have resumed."""
    count = 0
    reading = asyncio.ensure_future(store.unfinished_runs(batch))
    try:
        while not closed():
            views = await reading
            if not views:
                break
            if not count:
                log.info("resuming unfinished runs")
            await _prepared(prepare, views)
            # The next batch is read while this one resumes: the read waits on
            # the database (and is decoded on the reader's thread) while the
            # loop resumes runs, instead of the two taking turns.
            last = views[-1].run
            reading = asyncio.ensure_future(
                store.unfinished_runs(batch, after=(last.create_time, last.run_id))
            )
            await asyncio.sleep(0)  # on its way before the loop gets busy resuming
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
            await asyncio.sleep(0)
    finally:
        if not reading.done():
            reading.cancel()
        # A read nobody awaits any more (closed, or resuming failed) must not
        # leave an unretrieved exception behind.
        reading.add_done_callback(_ignore_outcome)
    if count:
        log.info("resumed %d unfinished runs", count)
    return count


async def _prepared(
    prepare: Callable[[list[RunView]], Awaitable[None]] | None, views: list[RunView]
) -> None:
    """`prepare(views)`: if it fails, the batch's runs read for themselves."""
    if prepare is None:
        return
    try:
        await prepare(views)
    except Exception:
        log.exception("could not read ahead for %d runs; resuming them one by one", len(views))


def _ignore_outcome(future: asyncio.Future[list[RunView]]) -> None:
    if not future.cancelled():
        future.exception()
