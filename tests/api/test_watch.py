"""WatchRun: replay then live, gap-free and duplicate-free across reconnects,
identical for every subscriber, and memory-bounded for slow subscribers."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from podium.testing import (
    FINAL_EVENT_TYPES,
    HANG_TIMEOUT,
    HoldAgent,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    error_info,
    eventually,
    field_violations,
    get_run,
    plugins_with,
    run_to_end,
    sequences,
    serving,
    start_run,
)
from podium.v1 import event_pb2, progress_service_pb2, run_pb2

E = event_pb2
R = run_pb2

CHAIN = {
    "steps": [echo_step(f"s{i}", *([f"s{i - 1}"] if i else []), delay_ms=40) for i in range(6)]
}


def assert_complete(events: list[event_pb2.RunEvent]) -> None:
    """1..N without gap or duplicate, exactly one final event, and it is last."""
    assert sequences(events) == list(range(1, len(events) + 1))
    finals = [i for i, e in enumerate(events) if e.type in FINAL_EVENT_TYPES]
    assert finals == [len(events) - 1]


async def test_replay_of_a_finished_run(stubs: Stubs) -> None:
    await create_workflow(stubs, "chain", CHAIN)
    run, live = await run_to_end(stubs, "chain")
    replay = await collect_events(stubs, run.name)
    assert_complete(replay)
    assert replay == live
    assert replay[-1].sequence == run.last_sequence
    assert replay[-1].type == E.RUN_EVENT_TYPE_RUN_SUCCEEDED

    tail = await collect_events(stubs, run.name, after_sequence=5)
    assert tail == replay[5:]


async def test_live_watch_of_a_running_run(db_path: str) -> None:
    # Each step holds until the watcher has seen the one before succeed: the
    # events surely arrive live, step by step, while the run goes on.
    hold = HoldAgent()
    chain = [f"s{i}" for i in range(6)]
    spec = {
        "steps": [
            {"id": step_id, "agent": "hold", "dependsOn": chain[:i][-1:]}
            for i, step_id in enumerate(chain)
        ]
    }
    async with serving(db_path, plugins=plugins_with([hold])) as (_, stubs):
        await create_workflow(stubs, "chain", spec)
        run = await start_run(stubs, "chain")
        call = stubs.progress.WatchRun(progress_service_pb2.WatchRunRequest(run=run.name))
        batches: list[list[event_pb2.RunEvent]] = []
        states_while_reading: list[int] = []

        async def read() -> None:
            async for response in call:
                batches.append(list(response.events))
                states_while_reading.append((await get_run(stubs, run.name)).state)

        reading = asyncio.ensure_future(asyncio.wait_for(read(), HANG_TIMEOUT))
        for step_id in chain:

            def seen(type_: int, step_id: str = step_id) -> bool:
                return any(e.type == type_ and e.step_id == step_id for b in batches for e in b)

            await eventually(lambda: seen(E.RUN_EVENT_TYPE_STEP_STARTED), what=f"{step_id} live")
            hold.release(step_id)
            await eventually(lambda: seen(E.RUN_EVENT_TYPE_STEP_SUCCEEDED), what=step_id)
        await reading
        events = [e for batch in batches for e in batch]
        assert_complete(events)
        assert all(batch for batch in batches)
        # Events arrived in several batches while the run was still going.
        assert len(batches) >= 6
        assert R.RUN_STATE_RUNNING in states_while_reading
        assert (await get_run(stubs, run.name)).last_sequence == events[-1].sequence


async def test_reconnect_in_the_middle_loses_and_repeats_nothing(stubs: Stubs) -> None:
    await create_workflow(stubs, "chain", CHAIN)
    run = await start_run(stubs, "chain")
    first = await collect_events(stubs, run.name, limit=5)
    assert first and first[-1].type not in FINAL_EVENT_TYPES
    assert sequences(first) == list(range(1, len(first) + 1))

    second = await collect_events(stubs, run.name, after_sequence=first[-1].sequence, limit=3)
    third = await collect_events(stubs, run.name, after_sequence=second[-1].sequence)
    union = first + second + third
    assert_complete(union)
    assert union == await collect_events(stubs, run.name)


async def test_reconnect_after_the_run_ended(stubs: Stubs) -> None:
    await create_workflow(stubs, "chain", CHAIN)
    run = await start_run(stubs, "chain")
    first = await collect_events(stubs, run.name, limit=2)
    await collect_events(stubs, run.name)  # the run ends meanwhile
    rest = await collect_events(stubs, run.name, after_sequence=first[-1].sequence)
    assert_complete(first + rest)


async def test_two_subscribers_see_identical_sequences(stubs: Stubs) -> None:
    await create_workflow(
        stubs, "fan", {"steps": [echo_step(f"p{i}", delay_ms=20 * (i % 3)) for i in range(12)]}
    )
    run = await start_run(stubs, "fan")
    one, two = await asyncio.gather(
        collect_events(stubs, run.name), collect_events(stubs, run.name)
    )
    assert_complete(one)
    assert one == two


async def test_many_subscribers_each_see_every_event_once(stubs: Stubs) -> None:
    # Watched by many, each subscriber is paced (engine/progress.py): its
    # messages carry several commits' events; none is lost, repeated or late
    # past the final event.
    chain = [echo_step("s0")] + [echo_step(f"s{i}", f"s{i - 1}") for i in range(1, 40)]
    await create_workflow(stubs, "chain", {"steps": chain})
    run = await start_run(stubs, "chain")
    seen = await asyncio.gather(*(collect_events(stubs, run.name) for _ in range(30)))
    for events in seen:
        assert_complete(events)
        assert events == seen[0]


async def test_after_sequence_at_or_beyond_the_end_yields_nothing(stubs: Stubs) -> None:
    await create_workflow(stubs, "chain", {"steps": [echo_step("a")]})
    run, events = await run_to_end(stubs, "chain")
    last = events[-1].sequence
    for after in (last, last + 1, last + 1000):
        assert await collect_events(stubs, run.name, after_sequence=after) == []


async def test_watch_unknown_run_is_not_found(stubs: Stubs) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await collect_events(stubs, "runs/0123456789abcdef")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(error.value).reason == "RUN_NOT_FOUND"


async def test_watch_bad_requests_are_invalid_argument(stubs: Stubs) -> None:
    await create_workflow(stubs, "chain", {"steps": [echo_step("a")]})
    run, _ = await run_to_end(stubs, "chain")
    for request, field in (
        (progress_service_pb2.WatchRunRequest(run="nonsense"), "run"),
        (progress_service_pb2.WatchRunRequest(run=run.name, after_sequence=-1), "after_sequence"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            async for _ in stubs.progress.WatchRun(request):
                pass
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [f for f, _ in field_violations(error.value)] == [field]


WIDE = 3000


async def test_a_slow_subscriber_still_gets_every_event(stubs: Stubs) -> None:
    """A subscriber that stops reading while ~6000 events happen (more than
    the hub's buffer of 2048) falls back to the log and loses nothing."""
    spec = {
        "steps": [
            echo_step("gate", delay_ms=200),
            *(echo_step(f"w{i:04d}", "gate") for i in range(WIDE)),
        ]
    }
    await create_workflow(stubs, "wide", spec)
    run = await start_run(stubs, "wide")
    call = stubs.progress.WatchRun(progress_service_pb2.WatchRunRequest(run=run.name))
    stream = call.__aiter__()
    first = await asyncio.wait_for(stream.__anext__(), HANG_TIMEOUT)
    events = list(first.events)
    assert events[0].sequence == 1

    async def finished() -> bool:
        return (await get_run(stubs, run.name)).state == R.RUN_STATE_SUCCEEDED

    await eventually(finished)  # not reading meanwhile

    async def read_rest() -> None:
        async for response in stream:
            events.extend(response.events)

    await asyncio.wait_for(read_rest(), HANG_TIMEOUT)
    assert_complete(events)
    started = {e.step_id for e in events if e.type == E.RUN_EVENT_TYPE_STEP_STARTED}
    assert len(started) == WIDE + 1
    assert events[-1].sequence == (await get_run(stubs, run.name)).last_sequence
