"""Reads a workflow's finished runs back from the store for insights and
estimates: newest first, within a window, at most MAX_RUNS of them."""

from __future__ import annotations

from podium.core.states import RunState
from podium.engine.insights import EVENT_TYPES, RunHistory
from podium.engine.ports import RunStore

MAX_RUNS = 200
# Per run: enough for every LLM call and wait of a large run, bounded all the same.
MAX_EVENTS = 20_000
PAGE = 50
FINAL_STATES = tuple(state for state in RunState if state.is_final)


async def finished_runs(
    store: RunStore, workflow_id: str, since: float, limit: int = MAX_RUNS
) -> list[RunHistory]:
    """Finished runs of `workflow_id` created at or after `since`, newest first."""
    found: list[RunHistory] = []
    after: tuple[float, str] | None = None
    while len(found) < limit:
        page = await store.list_runs(
            min(PAGE, limit - len(found)),
            after=after,
            workflow_id=workflow_id,
            states=FINAL_STATES,
        )
        for run in page:
            if run.create_time < since:
                return found
            view = await store.get_run(run.run_id)
            if view is None:  # deleted meanwhile (retention)
                continue
            events = await store.read_events_of_types(run.run_id, EVENT_TYPES, MAX_EVENTS)
            found.append(RunHistory(view.run, view.steps, events))
        if len(page) < PAGE:
            break
        after = (page[-1].create_time, page[-1].run_id)
    return found
