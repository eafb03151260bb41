"""ProgressService through a real server: WatchRun tells a run's whole story,
WatchRuns filters by workflow and event type (the stream's guarantees are in
test_watch.py)."""

from __future__ import annotations

import asyncio

from google.protobuf import json_format

from podium.server.app import PodiumServer
from podium.testing import (
    FINAL_EVENT_TYPES,
    HANG_TIMEOUT,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    eventually,
    get_run,
    sequences,
    start_run,
)
from podium.v1 import (
    event_pb2,
    progress_service_pb2,
    run_pb2,
)

E = event_pb2
R = run_pb2


async def subscribed(server: PodiumServer) -> None:
    """Until the server holds the WatchRuns subscription just opened: what
    happens from then on reaches it (WatchRuns replays nothing)."""
    await eventually(lambda: server.engine.hub.subscriber_count == 1, what="subscribed")


LINEAR = {"steps": [echo_step("a"), echo_step("b", "a")]}


async def test_watch_run_delivers_the_whole_story(stubs: Stubs) -> None:
    await create_workflow(stubs, "story", LINEAR)
    run = await start_run(stubs, "story", {"x": 1})
    events = await collect_events(stubs, run.name)

    assert sequences(events) == list(range(1, len(events) + 1))
    assert [(e.type, e.step_id) for e in events] == [
        (E.RUN_EVENT_TYPE_RUN_CREATED, ""),
        (E.RUN_EVENT_TYPE_RUN_STARTED, ""),
        (E.RUN_EVENT_TYPE_STEP_STARTED, "a"),
        (E.RUN_EVENT_TYPE_STEP_SUCCEEDED, "a"),
        (E.RUN_EVENT_TYPE_STEP_STARTED, "b"),
        (E.RUN_EVENT_TYPE_STEP_SUCCEEDED, "b"),
        (E.RUN_EVENT_TYPE_RUN_SUCCEEDED, ""),
    ]
    assert all(e.run == run.name and e.workflow == "workflows/story" for e in events)
    assert events[2].step_state == R.STEP_STATE_RUNNING and events[2].attempt == 1
    assert events[3].step_state == R.STEP_STATE_SUCCEEDED
    assert events[-1].run_state == R.RUN_STATE_SUCCEEDED
    assert json_format.MessageToDict(events[-1].output) == {"b": {}}
    times = [e.time.ToNanoseconds() for e in events]
    assert times == sorted(times)
    assert (await get_run(stubs, run.name)).last_sequence == events[-1].sequence


async def test_watch_runs_filters_by_workflow(server: PodiumServer, stubs: Stubs) -> None:
    await create_workflow(stubs, "watched", LINEAR)
    await create_workflow(stubs, "ignored", LINEAR)
    call = stubs.progress.WatchRuns(
        progress_service_pb2.WatchRunsRequest(workflows=["workflows/watched"])
    )
    await subscribed(server)
    ignored = await start_run(stubs, "ignored")
    watched = await start_run(stubs, "watched")
    await collect_events(stubs, ignored.name)

    received: list[event_pb2.RunEvent] = []

    async def read() -> None:
        async for response in call:
            received.extend(response.events)
            if any(e.type in FINAL_EVENT_TYPES for e in received):
                return

    try:
        await asyncio.wait_for(read(), HANG_TIMEOUT)
    finally:
        call.cancel()
    assert received
    assert {e.run for e in received} == {watched.name}
    assert {e.workflow for e in received} == {"workflows/watched"}
    assert sequences(received) == list(range(1, len(received) + 1))


async def test_watch_runs_filters_by_event_type(server: PodiumServer, stubs: Stubs) -> None:
    await create_workflow(stubs, "typed", LINEAR)
    call = stubs.progress.WatchRuns(
        progress_service_pb2.WatchRunsRequest(event_types=[E.RUN_EVENT_TYPE_STEP_SUCCEEDED])
    )
    await subscribed(server)
    run = await start_run(stubs, "typed")
    received: list[event_pb2.RunEvent] = []

    async def read() -> None:
        async for response in call:
            received.extend(response.events)
            if len(received) >= 2:
                return

    try:
        await asyncio.wait_for(read(), HANG_TIMEOUT)
    finally:
        call.cancel()
    assert [(e.run, e.type, e.step_id) for e in received] == [
        (run.name, E.RUN_EVENT_TYPE_STEP_SUCCEEDED, "a"),
        (run.name, E.RUN_EVENT_TYPE_STEP_SUCCEEDED, "b"),
    ]
