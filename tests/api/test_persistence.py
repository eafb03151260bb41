"""Everything survives a restart on the same SQLite file, and unfinished runs
resume by themselves: an interrupted attempt is recorded and runs again."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import json_format

from podium.testing import (
    FINAL_EVENT_TYPES,
    FOREVER_MS,
    HANG_TIMEOUT,
    HoldAgent,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    eventually,
    get_run,
    plugins_with,
    run_to_end,
    sequences,
    serving,
    start_run,
)
from podium.v1 import (
    event_pb2,
    execution_service_pb2,
    progress_service_pb2,
    run_pb2,
    workflow_service_pb2,
)

E = event_pb2
R = run_pb2
W = workflow_service_pb2
X = execution_service_pb2

LLM_STEP = {
    "id": "ask",
    "agent": "llm",
    "dependsOn": ["a"],
    "input": {"topic": "steps.a.output.topic"},
    "config": {"provider": "simulated", "model": "sim-small", "prompt": "About {{ input.topic }}"},
}


async def snapshot(stubs: Stubs, names: list[str]) -> dict[str, object]:
    state: dict[str, object] = {}
    for name in names:
        state[name] = (await get_run(stubs, name), await collect_events(stubs, name))
    state["workflows"] = await stubs.workflows.ListWorkflows(W.ListWorkflowsRequest())
    state["runs"] = await stubs.executions.ListRuns(X.ListRunsRequest())
    for version in (1, 2):
        state[f"v{version}"] = await stubs.workflows.GetWorkflow(
            W.GetWorkflowRequest(name="workflows/kept", version=version)
        )
    return state


async def test_finished_runs_and_workflows_survive_a_restart(db_path: str) -> None:
    async with serving(db_path) as (server, stubs):
        await create_workflow(stubs, "kept", {"description": "v1", "steps": [echo_step("a")]})
        await create_workflow(
            stubs,
            "kept",
            {
                "description": "v2",
                "steps": [echo_step("a", input={"topic": "input.topic"}), LLM_STEP],
                "labels": {"team": "docs"},
            },
        )
        await create_workflow(
            stubs,
            "breaks",
            {"steps": [{"id": "boom", "agent": "flaky"}, echo_step("next", "boom")]},
        )
        await create_workflow(stubs, "stalls", {"steps": [echo_step("slow", delay_ms=FOREVER_MS)]})

        ok, _ = await run_to_end(stubs, "kept", {"topic": "otters"}, request_id="keep-1")
        old, _ = await run_to_end(stubs, "kept", workflow_version=1)
        failed, _ = await run_to_end(stubs, "breaks")
        stalled = await start_run(stubs, "stalls")
        await collect_events(stubs, stalled.name, limit=3)
        await stubs.executions.CancelRun(X.CancelRunRequest(name=stalled.name))
        await collect_events(stubs, stalled.name)
        names = [ok.name, old.name, failed.name, stalled.name]
        before = await snapshot(stubs, names)
        await server.stop(1)

    assert before[ok.name][0].state == R.RUN_STATE_SUCCEEDED  # type: ignore[index]
    assert before[ok.name][0].cost.nanos + before[ok.name][0].cost.units > 0  # type: ignore[index]
    assert before[failed.name][0].state == R.RUN_STATE_FAILED  # type: ignore[index]
    assert before[stalled.name][0].state == R.RUN_STATE_CANCELLED  # type: ignore[index]

    async with serving(db_path) as (_, stubs):
        after = await snapshot(stubs, names)
        assert after == before
        # The idempotency key still maps to the same run.
        again = await start_run(stubs, "kept", {"topic": "otters"}, request_id="keep-1")
        assert again.name == ok.name
        # Nothing ran again: no run was resumed, no event was added.
        for name in names:
            assert (await get_run(stubs, name)).last_sequence == after[name][0].last_sequence  # type: ignore[index]


async def test_an_interrupted_run_resumes_and_succeeds(db_path: str) -> None:
    # `slow` holds until released: in flight when the server stops, however slow the machine.
    hold = HoldAgent()
    spec = {
        "steps": [
            echo_step("first", input={"x": "input.x"}),
            {
                "id": "slow",
                "agent": "hold",
                "dependsOn": ["first"],
                "input": {"x": "steps.first.output.x"},
            },
            echo_step("last", "slow", input={"x": "steps.slow.output.x + 1"}),
        ]
    }
    async with serving(db_path, plugins=plugins_with([hold])) as (server, stubs):
        await create_workflow(stubs, "resumable", spec)
        run = await start_run(stubs, "resumable", {"x": 41})
        before = await collect_events(stubs, run.name, limit=5)
        assert (before[-1].type, before[-1].step_id) == (E.RUN_EVENT_TYPE_STEP_STARTED, "slow")

        # A watcher connected at shutdown is told to reconnect.
        watcher = stubs.progress.WatchRun(
            progress_service_pb2.WatchRunRequest(run=run.name, after_sequence=before[-1].sequence)
        )
        watching = asyncio.ensure_future(_drain(watcher))
        await asyncio.sleep(0.05)  # connected by then or not, it gets UNAVAILABLE
        await server.stop(0.5)
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await asyncio.wait_for(watching, HANG_TIMEOUT)
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE

    hold.release()
    async with serving(db_path, plugins=plugins_with([hold])) as (_, stubs):
        rest = await collect_events(stubs, run.name, after_sequence=before[-1].sequence)
        assert sequences(before + rest) == list(range(1, len(before) + len(rest) + 1))
        assert rest[-1].type == E.RUN_EVENT_TYPE_RUN_SUCCEEDED
        replay = await collect_events(stubs, run.name)
        assert replay == before + rest

        resumed = await get_run(stubs, run.name)
        assert resumed.state == R.RUN_STATE_SUCCEEDED, resumed.failure
        steps = {s.step_id: s for s in resumed.steps}
        assert [a.state for a in steps["first"].attempts] == [R.ATTEMPT_STATE_SUCCEEDED]
        slow = steps["slow"]
        assert [(a.number, a.state) for a in slow.attempts] == [
            (1, R.ATTEMPT_STATE_INTERRUPTED),
            (2, R.ATTEMPT_STATE_SUCCEEDED),
        ]
        assert slow.attempts[0].failure.type == "podium.Interrupted"
        assert slow.attempts[0].failure.retryable
        assert slow.attempts[0].HasField("end_time")
        assert [a.state for a in steps["last"].attempts] == [R.ATTEMPT_STATE_SUCCEEDED]
        assert {s.state for s in resumed.steps} == {R.STEP_STATE_SUCCEEDED}
        # The finished step did not run again: exactly one STEP_STARTED for it.
        started = [e.step_id for e in replay if e.type == E.RUN_EVENT_TYPE_STEP_STARTED]
        assert started.count("first") == 1
        assert started.count("slow") == 2
        assert [
            e.attempt
            for e in replay
            if e.type == E.RUN_EVENT_TYPE_STEP_STARTED and e.step_id == "slow"
        ] == [1, 2]
        assert json_format.MessageToDict(resumed.output)["last"]["x"] == 42
        assert resumed.last_sequence == replay[-1].sequence


async def test_a_run_started_just_before_a_stop_is_not_lost(db_path: str) -> None:
    async with serving(db_path) as (server, stubs):
        await create_workflow(
            stubs,
            "quick",
            {"steps": [echo_step("a", delay_ms=100), echo_step("b", "a", delay_ms=100)]},
        )
        runs = [await start_run(stubs, "quick", {"i": i}) for i in range(3)]
        await server.stop(0)

    async with serving(db_path) as (_, stubs):
        for run in runs:
            events = await collect_events(stubs, run.name)
            assert sequences(events) == list(range(1, len(events) + 1))
            assert events[-1].type == E.RUN_EVENT_TYPE_RUN_SUCCEEDED
            assert [e.type for e in events].count(E.RUN_EVENT_TYPE_RUN_CREATED) == 1
            final = await get_run(stubs, run.name)
            assert final.state == R.RUN_STATE_SUCCEEDED
            assert all(len(s.attempts) >= 1 for s in final.steps)
            assert all(s.attempts[-1].state == R.ATTEMPT_STATE_SUCCEEDED for s in final.steps)


async def test_runs_resume_after_two_restarts(db_path: str) -> None:
    hold = HoldAgent()
    plugins = plugins_with([hold])
    spec = {"steps": [{"id": "slow", "agent": "hold"}]}
    async with serving(db_path, plugins=plugins) as (server, stubs):
        await create_workflow(stubs, "twice", spec)
        run = await start_run(stubs, "twice")
        await collect_events(stubs, run.name, limit=3)
        await server.stop(0)
    async with serving(db_path, plugins=plugins) as (server, stubs):

        async def second_attempt_running() -> bool:
            steps = (await get_run(stubs, run.name)).steps
            return (
                len(steps[0].attempts) == 2
                and steps[0].attempts[1].state == R.ATTEMPT_STATE_RUNNING
            )

        await eventually(second_attempt_running)
        await server.stop(0)
    hold.release()
    async with serving(db_path, plugins=plugins) as (_, stubs):
        events = await collect_events(stubs, run.name)
        assert sequences(events) == list(range(1, len(events) + 1))
        assert events[-1].type in FINAL_EVENT_TYPES
        final = await get_run(stubs, run.name)
        assert final.state == R.RUN_STATE_SUCCEEDED
        assert [a.state for a in final.steps[0].attempts] == [
            R.ATTEMPT_STATE_INTERRUPTED,
            R.ATTEMPT_STATE_INTERRUPTED,
            R.ATTEMPT_STATE_SUCCEEDED,
        ]


async def _drain(call: object) -> None:
    async for _ in call:  # type: ignore[attr-defined]
        pass
