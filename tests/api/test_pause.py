"""PauseRun / ResumeRun through gRPC: nothing new starts while paused (steps,
fan-out items, retries), running attempts finish, timers keep their due
times (ManualClock), PAUSED in GetRun, ListRuns and events, a paused run
stays paused across a restart, cancel of a paused run, bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2

from podium.core.clock import ManualClock
from podium.testing import (
    HoldAgent,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    error_info,
    eventually,
    get_run,
    of_type,
    plugins_with,
    serving,
    start_run,
    step_of,
    step_reaches,
)
from podium.v1 import event_pb2, execution_service_pb2, run_pb2

E = event_pb2
R = run_pb2
X = execution_service_pb2

START = 1_700_000_000.0


async def pause(stubs: Stubs, run: str, reason: str = "") -> run_pb2.Run:
    return (await stubs.executions.PauseRun(X.PauseRunRequest(name=run, reason=reason))).run


async def resume(stubs: Stubs, run: str) -> run_pb2.Run:
    return (await stubs.executions.ResumeRun(X.ResumeRunRequest(name=run))).run


async def settle(stubs: Stubs, run: str, rounds: int = 5) -> run_pb2.Run:
    """A few round trips, each of which lets the server's loop run what is
    ready: a start that the pause failed to hold would happen meanwhile."""
    current = await get_run(stubs, run)
    for _ in range(rounds):
        current = await get_run(stubs, run)
    return current


def at(stamp: timestamp_pb2.Timestamp) -> float:
    return stamp.seconds + stamp.nanos / 1e9


async def test_pause_holds_the_next_step_and_resume_starts_it(db_path: str) -> None:
    hold = HoldAgent()
    spec = {"steps": [{"id": "slow", "agent": "hold"}, echo_step("next", "slow")]}
    async with serving(db_path, plugins=plugins_with([hold])) as (_, stubs):
        await create_workflow(stubs, "pausable", spec)
        run = await start_run(stubs, "pausable")
        await eventually(lambda: "slow" in hold.held, what="slow running")

        paused = await pause(stubs, run.name, "maintenance")
        assert paused.state == R.RUN_STATE_PAUSED
        assert (await pause(stubs, run.name)).state == R.RUN_STATE_PAUSED  # a no-op

        hold.release("slow")  # the running attempt finishes while paused
        current = await step_reaches(stubs, run.name, "slow", R.STEP_STATE_SUCCEEDED)
        current = await settle(stubs, run.name)
        assert current.state == R.RUN_STATE_PAUSED
        assert step_of(current, "next").state == R.STEP_STATE_PENDING

        listed = await stubs.executions.ListRuns(X.ListRunsRequest(states=[R.RUN_STATE_PAUSED]))
        assert [r.name for r in listed.runs] == [run.name]

        resumed = await resume(stubs, run.name)
        assert resumed.state in (R.RUN_STATE_RUNNING, R.RUN_STATE_SUCCEEDED)
        events = await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
    assert final.state == R.RUN_STATE_SUCCEEDED
    types = [e.type for e in events]
    paused_at = types.index(E.RUN_EVENT_TYPE_RUN_PAUSED)
    resumed_at = types.index(E.RUN_EVENT_TYPE_RUN_RESUMED)
    assert len(of_type(events, E.RUN_EVENT_TYPE_RUN_PAUSED)) == 1
    next_started = next(
        i
        for i, e in enumerate(events)
        if e.type == E.RUN_EVENT_TYPE_STEP_STARTED and e.step_id == "next"
    )
    assert paused_at < resumed_at < next_started
    assert events[paused_at].message == "maintenance"
    assert events[paused_at].run_state == R.RUN_STATE_PAUSED
    assert events[resumed_at].run_state == R.RUN_STATE_RUNNING


async def test_pause_with_running_fan_out_items(db_path: str) -> None:
    hold = HoldAgent()
    spec = {
        "steps": [
            {
                "id": "each",
                "agent": "hold",
                "forEach": {"items": "input.items", "maxConcurrency": 2},
                "input": {"value": "item"},
            },
            echo_step("after", "each", input={"count": "size(steps.each.output)"}),
        ]
    }
    async with serving(db_path, plugins=plugins_with([hold])) as (_, stubs):
        await create_workflow(stubs, "fan", spec)
        run = await start_run(stubs, "fan", {"items": list(range(6))})
        await eventually(lambda: len(hold.held) == 2, what="two items running")
        await pause(stubs, run.name)
        hold.release()  # every item finishes at once from now on, if it starts

        async def two_done() -> bool:
            step = step_of(await get_run(stubs, run.name), "each")
            return step.items_succeeded == 2

        await eventually(two_done, what="the two running items finished")
        current = await settle(stubs, run.name)
        each = step_of(current, "each")
        assert current.state == R.RUN_STATE_PAUSED
        assert each.items_succeeded == 2
        assert len(each.attempts) == 2  # no third item started
        assert hold.held == []

        await resume(stubs, run.name)
        events = await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
    assert final.state == R.RUN_STATE_SUCCEEDED
    assert step_of(final, "each").items_succeeded == 6
    assert len(of_type(events, E.RUN_EVENT_TYPE_ITEM_STARTED)) == 6
    resumed_at = events.index(of_type(events, E.RUN_EVENT_TYPE_RUN_RESUMED)[0])
    item_starts = [i for i, e in enumerate(events) if e.type == E.RUN_EVENT_TYPE_ITEM_STARTED]
    assert sum(1 for i in item_starts if i > resumed_at) == 4


@pytest.fixture
async def manual(db_path: str) -> AsyncIterator[tuple[ManualClock, Stubs]]:
    clock = ManualClock(start=START)
    async with serving(db_path, clock=clock) as (_, stubs):
        yield clock, stubs


def flaky(step_id: str, **config: Any) -> dict[str, Any]:
    return {"id": step_id, "agent": "flaky", "config": config}


async def test_a_retry_keeps_its_due_time_and_waits_for_resume(
    manual: tuple[ManualClock, Stubs],
) -> None:
    clock, stubs = manual
    retry = [{"errorEquals": ["FlakyError"], "interval": "10s", "maxAttempts": 3}]
    spec = {"steps": [{**flaky("f", fail_attempts=1), "retry": retry}]}
    await create_workflow(stubs, "retrying", spec)
    run = await start_run(stubs, "retrying")
    waiting = await step_reaches(stubs, run.name, "f", R.STEP_STATE_WAITING, attempts=1)
    due = at(step_of(waiting, "f").due_time)
    assert due == pytest.approx(START + 10)

    await pause(stubs, run.name)
    await eventually(lambda: clock.sleepers >= 1, what="the retry timer armed")
    clock.advance(10)  # the retry falls due while paused: it does not start
    current = await settle(stubs, run.name)
    assert current.state == R.RUN_STATE_PAUSED
    assert len(step_of(current, "f").attempts) == 1
    assert at(step_of(current, "f").due_time) == pytest.approx(due)

    await resume(stubs, run.name)  # due already: the attempt starts, no new delay
    events = await collect_events(stubs, run.name)
    final = await get_run(stubs, run.name)
    assert final.state == R.RUN_STATE_SUCCEEDED
    attempts = step_of(final, "f").attempts
    assert [at(a.start_time) for a in attempts] == pytest.approx([START, START + 10])
    assert len(of_type(events, E.RUN_EVENT_TYPE_RUN_RESUMED)) == 1


async def test_a_run_deadline_keeps_running_while_paused(
    manual: tuple[ManualClock, Stubs],
) -> None:
    clock, stubs = manual
    spec = {"timeout": "30s", "steps": [{"id": "w", "wait": {"duration": "3600s"}}]}
    await create_workflow(stubs, "deadline", spec)
    run = await start_run(stubs, "deadline")
    await step_reaches(stubs, run.name, "w", R.STEP_STATE_WAITING)
    await pause(stubs, run.name)
    await eventually(lambda: clock.sleepers >= 2, what="the deadline and the wait armed")
    clock.advance(30)
    await collect_events(stubs, run.name)
    final = await get_run(stubs, run.name)
    assert final.state == R.RUN_STATE_FAILED
    assert "timed out" in final.failure.message


async def test_cancel_a_paused_run(db_path: str) -> None:
    hold = HoldAgent()
    spec = {"steps": [{"id": "slow", "agent": "hold"}, echo_step("next", "slow")]}
    async with serving(db_path, plugins=plugins_with([hold])) as (_, stubs):
        await create_workflow(stubs, "cancel-paused", spec)
        run = await start_run(stubs, "cancel-paused")
        await eventually(lambda: "slow" in hold.held, what="slow running")
        await pause(stubs, run.name)
        response = await stubs.executions.CancelRun(X.CancelRunRequest(name=run.name))
        assert response.run.state == R.RUN_STATE_CANCELLED
        final = await get_run(stubs, run.name)
        assert {s.step_id: s.state for s in final.steps} == {
            "slow": R.STEP_STATE_CANCELLED,
            "next": R.STEP_STATE_CANCELLED,
        }
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await resume(stubs, run.name)
        assert ended.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_info(ended.value).reason == "RUN_ALREADY_ENDED"
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await pause(stubs, run.name)
        assert ended.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_paused_run_stays_paused_across_a_restart(db_path: str) -> None:
    hold = HoldAgent()
    spec = {"steps": [echo_step("first"), {"id": "slow", "agent": "hold", "dependsOn": ["first"]}]}
    async with serving(db_path, plugins=plugins_with([hold])) as (server, stubs):
        await create_workflow(stubs, "restart", spec)
        run = await start_run(stubs, "restart")
        await eventually(lambda: "slow" in hold.held, what="slow running")
        await pause(stubs, run.name)
        await server.stop(0)

    hold = HoldAgent()
    hold.release()
    async with serving(db_path, plugins=plugins_with([hold])) as (_, stubs):
        # Resumed by recovery: the interrupted attempt is recorded, no new one starts.
        async def interrupted() -> bool:
            attempts = step_of(await get_run(stubs, run.name), "slow").attempts
            return [a.state for a in attempts] == [R.ATTEMPT_STATE_INTERRUPTED]

        await eventually(interrupted, what="the interrupted attempt recorded")
        current = await settle(stubs, run.name)
        assert current.state == R.RUN_STATE_PAUSED
        assert len(step_of(current, "slow").attempts) == 1

        await resume(stubs, run.name)
        await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
    assert final.state == R.RUN_STATE_SUCCEEDED
    assert [a.state for a in step_of(final, "slow").attempts] == [
        R.ATTEMPT_STATE_INTERRUPTED,
        R.ATTEMPT_STATE_SUCCEEDED,
    ]


async def test_unknown_and_malformed_runs(stubs: Stubs) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await pause(stubs, "runs/nope")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await resume(stubs, "runs/nope")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await pause(stubs, "workflows/x")
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
