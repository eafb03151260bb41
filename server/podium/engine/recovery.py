"""Recovery after a restart: every unfinished run resumes, in the background,
one at a time, so that the server answers (health, GetRun) meanwhile."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from podium.engine.ports import RunStore

log = logging.getLogger("podium.engine")


async def recover(
    store: RunStore,
    resume: Callable[[str], Awaitable[None]],
    closed: Callable[[], bool],
) -> None:
    """Calls `resume(run_id)` for every unfinished run, oldest first, until
    `closed()`; a run that fails to resume is logged and skipped."""
    run_ids = await store.unfinished_run_ids()
    if run_ids:
        log.info("resuming %d unfinished runs", len(run_ids))
    for run_id in run_ids:
        if closed():
            return
        try:
            await resume(run_id)
        except Exception:
            log.exception("could not resume run %s", run_id, extra={"run_id": run_id})
        await asyncio.sleep(0)  # let RPCs in between resumptions
