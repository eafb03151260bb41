"""Run priorities under a server-wide step limit (through a real server, and
PrioritySlots' aging on a ManualClock), and the step result cache."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest

from podium.core.clock import ManualClock
from podium.engine.slots import AGING_SECONDS, PrioritySlots
from podium.server.app import PodiumServer
from podium.testing import (
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    eventually,
    get_run,
    of_type,
    plain,
    run_to_end,
    serving,
    start_run,
    step_of,
)
from podium.v1 import event_pb2, execution_service_pb2, progress_service_pb2, run_pb2

E = event_pb2
R = run_pb2

# -- priorities through the server -----------------------------------------------------------


@asynccontextmanager
async def started_steps(stubs: Stubs) -> AsyncIterator[list[event_pb2.RunEvent]]:
    """Every STEP_STARTED event of the server, in the order it was recorded
    (WatchRuns), collected in the background while the block runs."""
    seen: list[event_pb2.RunEvent] = []
    call = stubs.progress.WatchRuns(
        progress_service_pb2.WatchRunsRequest(event_types=[E.RUN_EVENT_TYPE_STEP_STARTED])
    )

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
    """Starts a run whose one step holds the server's only slot for a minute."""
    await create_workflow(stubs, "blocker", {"steps": [echo_step("hold", delay_ms=60_000)]})
    await create_workflow(stubs, "job", {"steps": [echo_step("work")]})
    blocker = await start_run(stubs, "blocker")

    async def holding() -> bool:
        return any(e.run == blocker.name for e in seen) and server.engine.slots.in_use == 1

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
            return server.engine.slots.waiting == queued

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
        started_steps(stubs) as seen,
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
        started_steps(stubs) as seen,
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


# -- PrioritySlots on a ManualClock: aging -------------------------------------------------


async def enqueue(slots: PrioritySlots, priority: int, granted: list[int]) -> asyncio.Task[None]:
    """A task that waits for a slot, notes its priority when granted, keeps it."""

    async def acquire() -> None:
        await slots.acquire(priority)
        granted.append(priority)

    task = asyncio.ensure_future(acquire())
    await asyncio.sleep(0)  # queued now
    return task


async def grant_all(slots: PrioritySlots, tasks: Sequence[asyncio.Task[None]]) -> None:
    for _ in tasks:
        slots.release()
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)


async def test_slots_go_by_priority_then_fifo() -> None:
    slots = PrioritySlots(1, ManualClock())
    await slots.acquire(0)
    granted: list[int] = []
    tasks = [await enqueue(slots, p, granted) for p in (1, 3, 2, 3, 1)]
    assert slots.waiting == 5
    await grant_all(slots, tasks)
    assert granted == [3, 3, 2, 1, 1]


async def test_fifo_within_a_priority_exactly() -> None:
    clock = ManualClock()
    slots = PrioritySlots(1, clock)
    await slots.acquire(0)
    order: list[str] = []

    async def waiter(name: str) -> None:
        await slots.acquire(4)
        order.append(name)

    tasks = []
    for name in "abcde":
        tasks.append(asyncio.ensure_future(waiter(name)))
        await asyncio.sleep(0)
        clock.advance(0.001)
    await grant_all(slots, tasks)
    assert order == list("abcde")


@pytest.mark.parametrize(
    ("periods", "expected"),
    [(3, [0, 2]), (1, [2, 0])],
    ids=["aged-past", "not-yet"],
)
async def test_a_low_priority_waiter_ages(periods: int, expected: list[int]) -> None:
    """A priority-0 waiter, then a priority-2 one `periods` aging periods later:
    the old waiter's effective priority is `periods` by then, against 2."""
    clock = ManualClock()
    slots = PrioritySlots(1, clock)
    await slots.acquire(0)
    granted: list[int] = []
    old_low = await enqueue(slots, 0, granted)
    clock.advance(periods * AGING_SECONDS)
    late_high = await enqueue(slots, 2, granted)
    await grant_all(slots, [old_low, late_high])
    assert granted == expected


async def test_nothing_starves_behind_a_stream_of_high_priority_arrivals() -> None:
    clock = ManualClock()
    slots = PrioritySlots(1, clock)
    await slots.acquire(0)
    granted: list[str] = []

    async def waiter(name: str, priority: int) -> None:
        await slots.acquire(priority)
        granted.append(name)

    tasks = [asyncio.ensure_future(waiter("low", 0))]
    await asyncio.sleep(0)
    # A priority-5 waiter arrives every second and one slot is freed per
    # second: the low waiter ages one level per AGING_SECONDS, so the arrivals
    # of the first 5 periods go before it, and it goes before every later one.
    for second in range(1, 100):
        clock.advance(1)
        tasks.append(asyncio.ensure_future(waiter(f"high{second}", 5)))
        await asyncio.sleep(0)
        slots.release()
        await asyncio.sleep(0)
        if "low" in granted:
            break
    try:
        assert granted == [f"high{s}" for s in range(1, int(5 * AGING_SECONDS))] + ["low"]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_cancelled_waiter_gives_up_its_place() -> None:
    slots = PrioritySlots(1, ManualClock())
    await slots.acquire(0)
    granted: list[int] = []
    first = await enqueue(slots, 9, granted)
    second = await enqueue(slots, 1, granted)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    slots.release()
    await second
    assert granted == [1]
    assert (slots.in_use, slots.waiting) == (1, 0)


async def test_a_slot_granted_to_a_waiter_cancelled_meanwhile_is_handed_on() -> None:
    slots = PrioritySlots(1, ManualClock())
    await slots.acquire(0)
    granted: list[int] = []
    first = await enqueue(slots, 9, granted)
    second = await enqueue(slots, 1, granted)
    slots.release()  # granted to `first` ...
    first.cancel()  # ... which is cancelled before it could run
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(second, 1.0)
    assert granted == [1]
    assert slots.in_use == 1
    slots.release()
    assert slots.in_use == 0


async def test_free_capacity_is_granted_at_once() -> None:
    slots = PrioritySlots(3, ManualClock())
    for priority in (0, -5, 5):
        await asyncio.wait_for(slots.acquire(priority), 0.1)
    assert (slots.in_use, slots.waiting) == (3, 0)


# -- the step result cache -----------------------------------------------------------------


def cached_step(ttl: str = "60s", **config: Any) -> dict[str, Any]:
    step = echo_step("work", input={"q": "input.q"}, cache={"ttl": ttl})
    if config:
        step["config"] = config
    return {"steps": [step]}


async def cached_run(stubs: Stubs, workflow: str, q: Any) -> tuple[Any, list[Any], Any]:
    run, events = await run_to_end(stubs, workflow, {"q": q})
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    return run, events, step_of(run, "work")


def hits(events: Sequence[event_pb2.RunEvent]) -> list[event_pb2.RunEvent]:
    return of_type(events, E.RUN_EVENT_TYPE_STEP_CACHE_HIT)


async def test_the_same_input_within_the_ttl_is_a_cache_hit(db_path: str) -> None:
    clock = ManualClock()
    async with serving(db_path, clock=clock) as (_, stubs):
        await create_workflow(stubs, "cached", cached_step())
        _, first_events, first = await cached_run(stubs, "cached", "otters")
        assert not hits(first_events)
        assert len(first.attempts) == 1

        clock.advance(59)
        _, events, second = await cached_run(stubs, "cached", "otters")
        assert len(hits(events)) == 1
        hit = hits(events)[0]
        assert hit.step_id == "work"
        assert plain(hit.output) == {"q": "otters"}
        assert not second.attempts  # nothing ran
        assert not of_type(events, E.RUN_EVENT_TYPE_STEP_STARTED)
        assert plain(second.output) == plain(first.output) == {"q": "otters"}
        assert plain(second.input) == {"q": "otters"}
        assert second.state == R.STEP_STATE_SUCCEEDED
        succeeded = of_type(events, E.RUN_EVENT_TYPE_STEP_SUCCEEDED)
        assert [plain(e.output) for e in succeeded] == [{"q": "otters"}]


async def test_a_different_input_is_a_miss(db_path: str) -> None:
    async with serving(db_path, clock=ManualClock()) as (_, stubs):
        await create_workflow(stubs, "cached", cached_step())
        await cached_run(stubs, "cached", "otters")
        _, events, other = await cached_run(stubs, "cached", "beavers")
        assert not hits(events)
        assert len(other.attempts) == 1
        assert plain(other.output) == {"q": "beavers"}
        # Both are cached now, each under its own input.
        _, again, _ = await cached_run(stubs, "cached", "otters")
        assert len(hits(again)) == 1


async def test_after_the_ttl_it_is_a_miss(db_path: str) -> None:
    clock = ManualClock()
    async with serving(db_path, clock=clock) as (_, stubs):
        await create_workflow(stubs, "cached", cached_step())
        await cached_run(stubs, "cached", "otters")
        clock.advance(61)
        _, events, work = await cached_run(stubs, "cached", "otters")
        assert not hits(events)
        assert len(work.attempts) == 1
        # That run cached its result afresh.
        _, again, _ = await cached_run(stubs, "cached", "otters")
        assert len(hits(again)) == 1


async def test_a_different_config_is_a_miss(db_path: str) -> None:
    async with serving(db_path, clock=ManualClock()) as (_, stubs):
        await create_workflow(stubs, "cached", cached_step())
        await create_workflow(stubs, "cached-slow", cached_step(delay_ms=1))
        await cached_run(stubs, "cached", "otters")
        _, events, work = await cached_run(stubs, "cached-slow", "otters")
        assert not hits(events)
        assert len(work.attempts) == 1


async def test_the_cache_survives_a_restart(db_path: str) -> None:
    clock = ManualClock()
    async with serving(db_path, clock=clock) as (_, stubs):
        await create_workflow(stubs, "cached", cached_step())
        await cached_run(stubs, "cached", "otters")
    async with serving(db_path, clock=ManualClock(clock.now() + 30)) as (_, stubs):
        _, events, work = await cached_run(stubs, "cached", "otters")
        assert len(hits(events)) == 1
        assert not work.attempts


async def test_without_a_cache_nothing_is_reused(stubs: Stubs) -> None:
    await create_workflow(stubs, "uncached", {"steps": [echo_step("work", input={"q": "input.q"})]})
    for _ in range(2):
        _, events, work = await cached_run(stubs, "uncached", "otters")
        assert not hits(events)
        assert len(work.attempts) == 1


async def test_get_run_of_a_cache_hit(db_path: str) -> None:
    async with serving(db_path, clock=ManualClock()) as (_, stubs):
        await create_workflow(stubs, "cached", cached_step())
        await cached_run(stubs, "cached", "otters")
        run, _, _ = await cached_run(stubs, "cached", "otters")
        view = await get_run(stubs, run.name)
        assert plain(view.output) == {"work": {"q": "otters"}}
        assert not step_of(view, "work").attempts
