"""Run priorities under a server-wide step limit, through a real server: the
higher priority gets the free slot first, FIFO within a priority. The slots'
aging on its own: tests/unit/engine/test_slots.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from podium.server.app import PodiumServer
from podium.testing import (
    FOREVER_MS,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    eventually,
    get_run,
    of_type,
    run_to_end,
    serving,
    start_run,
)
from podium.v1 import event_pb2, execution_service_pb2, progress_service_pb2, run_pb2

E = event_pb2
R = run_pb2


@asynccontextmanager
async def started_steps(
    server: PodiumServer, stubs: Stubs
) -> AsyncIterator[list[event_pb2.RunEvent]]:
    """Every STEP_STARTED event of the server, in the order it was recorded
    (WatchRuns), collected in the background while the block runs."""
    seen: list[event_pb2.RunEvent] = []
    call = stubs.progress.WatchRuns(
        progress_service_pb2.WatchRunsRequest(event_types=[E.RUN_EVENT_TYPE_STEP_STARTED])
    )
    # WatchRuns replays nothing: the block starts once the server holds the subscription.
    await eventually(lambda: server.engine.hub.subscriber_count == 1, what="WatchRuns subscribed")

    async def read() -> None:
        async for response in call:
            seen.extend(response.events)

    reader = asyncio.ensure_future(read())
    try:
        yield seen
    finally:
        call.cancel()
        await asyncio.gather(reader, return_exceptions=True)


async def hold_the_only_slot(
    server: PodiumServer, stubs: Stubs, seen: list[event_pb2.RunEvent]
) -> run_pb2.Run:
    """Starts a run whose one step holds the server's only slot until cancelled."""
    await create_workflow(stubs, "blocker", {"steps": [echo_step("hold", delay_ms=FOREVER_MS)]})
    await create_workflow(stubs, "job", {"steps": [echo_step("work")]})
    blocker = await start_run(stubs, "blocker")

    async def holding() -> bool:
        return any(e.run == blocker.name for e in seen) and server.engine.services.slots.in_use == 1

    await eventually(holding)
    return blocker


async def queue_runs(
    server: PodiumServer, stubs: Stubs, priorities: Sequence[int]
) -> list[run_pb2.Run]:
    """Starts one `job` run per priority, in order, each queued for the slot
    before the next one starts."""
    runs = []
    for priority in priorities:
        runs.append(await start_run(stubs, "job", priority=priority))
        queued = len(runs)

        async def waiting(queued: int = queued) -> bool:
            return server.engine.services.slots.waiting == queued

        await eventually(waiting)
    return runs


async def release(stubs: Stubs, blocker: run_pb2.Run) -> None:
    await stubs.executions.CancelRun(execution_service_pb2.CancelRunRequest(name=blocker.name))


async def start_order(
    stubs: Stubs, seen: list[event_pb2.RunEvent], runs: Sequence[run_pb2.Run]
) -> list[str]:
    """The runs' names in the order their step started, once all ended."""
    for run in runs:
        events = await collect_events(stubs, run.name)
        assert events[-1].type == E.RUN_EVENT_TYPE_RUN_SUCCEEDED
    names = {run.name for run in runs}

    async def all_seen() -> bool:
        return len([e for e in seen if e.run in names]) == len(runs)

    await eventually(all_seen)
    return [e.run for e in seen if e.run in names]


async def test_the_higher_priority_run_gets_the_free_slot_first(db_path: str) -> None:
    async with (
        serving(db_path, max_running_steps=1) as (server, stubs),
        started_steps(server, stubs) as seen,
    ):
        blocker = await hold_the_only_slot(server, stubs, seen)
        low, high = await queue_runs(server, stubs, [1, 5])
        assert (await get_run(stubs, high.name)).priority == 5
        await release(stubs, blocker)
        order = await start_order(stubs, seen, [low, high])
        assert order == [high.name, low.name]
        # And by the events' own times: with one slot, the high run's step
        # ended before the low run's began.
        high_events = await collect_events(stubs, high.name)
        low_events = await collect_events(stubs, low.name)
        high_done = of_type(high_events, E.RUN_EVENT_TYPE_STEP_SUCCEEDED)[0].time
        low_started = of_type(low_events, E.RUN_EVENT_TYPE_STEP_STARTED)[0].time
        assert high_done.ToNanoseconds() <= low_started.ToNanoseconds()


async def test_fifo_within_a_priority_and_by_priority_across(db_path: str) -> None:
    async with (
        serving(db_path, max_running_steps=1) as (server, stubs),
        started_steps(server, stubs) as seen,
    ):
        blocker = await hold_the_only_slot(server, stubs, seen)
        runs = await queue_runs(server, stubs, [0, 3, 0, 3, -2, 3])
        await release(stubs, blocker)
        order = await start_order(stubs, seen, runs)
    names = [run.name for run in runs]
    expected = [names[1], names[3], names[5], names[0], names[2], names[4]]
    assert order == expected


async def test_a_negative_priority_is_accepted_and_kept(stubs: Stubs) -> None:
    await create_workflow(stubs, "prio", {"steps": [echo_step("work")]})
    run, _ = await run_to_end(stubs, "prio", priority=-7)
    assert run.state == R.RUN_STATE_SUCCEEDED
    assert run.priority == -7
