"""RerunRun / RerunRuns through gRPC: succeeded steps are reused (no attempt,
no cost: the simulated LLM's spend proves it), failed ones and everything
downstream run again, from_steps, the link to the original, the bulk form,
and bad input (unknown step, unknown run, a run not finished)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from podium.client import AsyncClient
from podium.plugins.api import AgentError, StepContext
from podium.testing import (
    HoldAgent,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    error_info,
    eventually,
    field_violations,
    get_run,
    money_nanos,
    plugins_with,
    serving,
    start_run,
    step_of,
)
from podium.v1 import event_pb2, execution_service_pb2, run_pb2

E = event_pb2
R = run_pb2
X = execution_service_pb2
UNDO = {"agent": "echo", "input": {"undo": "output"}}


class FailsFirstCalls:
    """Fails its first `failures` calls (across runs), then returns its input:
    a step that failed in a run and succeeds when re-run."""

    name = "fails-first"
    description = "Fails its first calls, then returns its input (test agent)."
    version = "1"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def run(self, ctx: StepContext) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise AgentError(f"call {self.calls} fails", code="Broken", retryable=False)
        return ctx.input


class Switch:
    """Fails while `failing` is set, else returns its input: a step that
    succeeded in a run and fails when re-run (or the other way round)."""

    name = "switch"
    description = "Fails while told to (test agent)."
    version = "1"

    def __init__(self, failing: bool) -> None:
        self.failing = failing

    async def run(self, ctx: StepContext) -> Any:
        if self.failing:
            raise AgentError("switched off", code="Switched", retryable=False)
        return ctx.input


SPEC = {
    "steps": [
        {
            "id": "ask",
            "agent": "llm",
            "config": {"provider": "simulated", "model": "sim-small", "prompt": "Hi"},
        },
        {"id": "fragile", "agent": "fails-first", "dependsOn": ["ask"], "input": {"x": "1"}},
        echo_step("after", "fragile"),
        echo_step("side"),
    ]
}


async def finish(stubs: Stubs, run: str) -> run_pb2.Run:
    await collect_events(stubs, run)
    return await get_run(stubs, run)


async def rerun(stubs: Stubs, run: str, *from_steps: str) -> run_pb2.Run:
    request = X.RerunRunRequest(name=run, from_steps=list(from_steps))
    return (await stubs.executions.RerunRun(request)).run


def attempts(run: run_pb2.Run) -> dict[str, int]:
    return {step.step_id: len(step.attempts) for step in run.steps}


async def test_rerun_reuses_succeeded_steps_and_runs_the_failed_and_downstream(
    db_path: str,
) -> None:
    fragile = FailsFirstCalls(1)
    async with serving(db_path, plugins=plugins_with([fragile])) as (_, stubs):
        await create_workflow(stubs, "flow", SPEC)
        original = await finish(stubs, (await start_run(stubs, "flow", {"k": 1})).name)
        assert original.state == R.RUN_STATE_FAILED
        assert step_of(original, "after").state == R.STEP_STATE_SKIPPED
        assert money_nanos(original.cost) > 0

        started = await rerun(stubs, original.name)
        assert started.rerun_of == original.name
        again = await finish(stubs, started.name)
        # The original is untouched.
        assert (await get_run(stubs, original.name)).state == R.RUN_STATE_FAILED

    assert again.state == R.RUN_STATE_SUCCEEDED
    assert again.rerun_of == original.name
    assert again.workflow_version == original.workflow_version
    assert again.input == original.input
    assert attempts(again) == {"ask": 0, "fragile": 1, "after": 1, "side": 0}
    assert money_nanos(again.cost) == 0  # the LLM step was not called again
    assert fragile.calls == 2
    ask = step_of(again, "ask")
    assert ask.state == R.STEP_STATE_SUCCEEDED
    assert ask.output == step_of(original, "ask").output
    assert original.name.removeprefix("runs/") in ask.reason
    assert step_of(again, "side").state == R.STEP_STATE_SUCCEEDED


async def test_rerun_from_named_steps_runs_them_and_downstream(db_path: str) -> None:
    fragile = FailsFirstCalls(0)
    async with serving(db_path, plugins=plugins_with([fragile])) as (_, stubs):
        await create_workflow(stubs, "flow", SPEC)
        original = await finish(stubs, (await start_run(stubs, "flow")).name)
        assert original.state == R.RUN_STATE_SUCCEEDED

        from_llm = await finish(stubs, (await rerun(stubs, original.name, "ask")).name)
        from_tail = await finish(stubs, (await rerun(stubs, original.name, "after")).name)
    assert from_llm.state == R.RUN_STATE_SUCCEEDED
    assert attempts(from_llm) == {"ask": 1, "fragile": 1, "after": 1, "side": 0}
    assert money_nanos(from_llm.cost) == money_nanos(original.cost) > 0
    assert from_tail.state == R.RUN_STATE_SUCCEEDED
    assert attempts(from_tail) == {"ask": 0, "fragile": 0, "after": 1, "side": 0}
    assert money_nanos(from_tail.cost) == 0
    assert fragile.calls == 2  # the original and the re-run from `ask`


async def test_rerun_runs_in_bulk_by_filter(db_path: str) -> None:
    fragile = FailsFirstCalls(2)
    async with serving(db_path, plugins=plugins_with([fragile])) as (_, stubs):
        await create_workflow(stubs, "flow", SPEC)
        failed = [await finish(stubs, (await start_run(stubs, "flow")).name) for _ in range(2)]
        succeeded = await finish(stubs, (await start_run(stubs, "flow")).name)
        assert [r.state for r in failed] == [R.RUN_STATE_FAILED] * 2
        assert succeeded.state == R.RUN_STATE_SUCCEEDED

        response = await stubs.executions.RerunRuns(
            X.RerunRunsRequest(workflow="workflows/flow", states=[R.RUN_STATE_FAILED])
        )
        assert sorted(response.originals) == sorted(r.name for r in failed)
        reruns = [await finish(stubs, name) for name in response.runs]
    assert [r.rerun_of for r in reruns] == list(response.originals)
    assert [r.state for r in reruns] == [R.RUN_STATE_SUCCEEDED] * 2
    assert all(attempts(r)["ask"] == 0 for r in reruns)


async def test_bad_reruns(db_path: str) -> None:
    hold = HoldAgent()
    async with serving(db_path, plugins=plugins_with([hold, FailsFirstCalls(0)])) as (_, stubs):
        await create_workflow(stubs, "flow", SPEC)
        done = await finish(stubs, (await start_run(stubs, "flow")).name)

        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await rerun(stubs, done.name, "ask", "nope")
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(bad.value) == [("from_steps[1]", "the run has no step 'nope'")]

        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await rerun(stubs, "runs/nope")
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND

        with pytest.raises(grpc.aio.AioRpcError) as malformed:
            await rerun(stubs, "workflows/flow")
        assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        await create_workflow(stubs, "held", {"steps": [{"id": "h", "agent": "hold"}]})
        running = await start_run(stubs, "held")
        await eventually(lambda: "h" in hold.held, what="h running")
        with pytest.raises(grpc.aio.AioRpcError) as unfinished:
            await rerun(stubs, running.name)
        assert unfinished.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_info(unfinished.value).reason == "RUN_NOT_FINISHED"

        with pytest.raises(grpc.aio.AioRpcError) as bulk:
            await stubs.executions.RerunRuns(X.RerunRunsRequest(states=[R.RUN_STATE_RUNNING]))
        assert bulk.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as bulk:
            await stubs.executions.RerunRuns(X.RerunRunsRequest(from_steps=["nope"]))
        assert bulk.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        hold.release()


# -- re-runs and compensation (rerun.py: a reused step belongs to the original) ----------

SAGA = {
    "steps": [
        echo_step("book", input={"booked": "'flight'"}, compensate=UNDO),
        echo_step("hold", "book", input={"held": "'seat'"}, compensate=UNDO),
        {"id": "pay", "agent": "switch", "dependsOn": ["hold"], "input": {"x": "1"}},
    ]
}


def compensated(events: list[event_pb2.RunEvent]) -> list[tuple[int, str]]:
    kinds = {
        E.RUN_EVENT_TYPE_COMPENSATION_STARTED,
        E.RUN_EVENT_TYPE_COMPENSATION_SUCCEEDED,
        E.RUN_EVENT_TYPE_COMPENSATION_FAILED,
    }
    return [(e.type, e.step_id) for e in events if e.type in kinds]


async def test_a_failed_rerun_compensates_only_the_steps_it_ran(db_path: str) -> None:
    pay = Switch(failing=False)
    async with serving(db_path, plugins=plugins_with([pay])) as (_, stubs):
        await create_workflow(stubs, "saga", SAGA)
        original = await finish(stubs, (await start_run(stubs, "saga")).name)
        assert original.state == R.RUN_STATE_SUCCEEDED  # nothing compensated
        pay.failing = True
        started = await rerun(stubs, original.name, "hold")
        events = await collect_events(stubs, started.name)
        again = await get_run(stubs, started.name)
    assert again.state == R.RUN_STATE_FAILED
    assert attempts(again) == {"book": 0, "hold": 1, "pay": 1}
    assert step_of(again, "book").reason.startswith("reused from runs/")
    # `hold` ran in the re-run: undone. `book` was reused: its effect is the
    # original's, which succeeded and keeps it.
    assert compensated(events) == [
        (E.RUN_EVENT_TYPE_COMPENSATION_STARTED, "hold"),
        (E.RUN_EVENT_TYPE_COMPENSATION_SUCCEEDED, "hold"),
    ]


async def test_a_reused_step_is_not_compensated_after_a_restart_either(db_path: str) -> None:
    # The re-run is read back from the store: only the durable record tells
    # its reused steps from the steps it ran.
    pay = Switch(failing=False)
    hold = HoldAgent()
    spec = {
        "steps": [
            echo_step("book", input={"booked": "'flight'"}, compensate=UNDO),
            {"id": "wait", "agent": "hold", "dependsOn": ["book"]},
            {"id": "pay", "agent": "switch", "dependsOn": ["wait"], "input": {"x": "1"}},
        ]
    }
    async with serving(db_path, plugins=plugins_with([pay, hold])) as (_, stubs):
        await create_workflow(stubs, "saga", spec)
        hold.release()
        original = await finish(stubs, (await start_run(stubs, "saga")).name)
        assert original.state == R.RUN_STATE_SUCCEEDED
    pay.failing = True
    hold = HoldAgent()
    async with serving(db_path, plugins=plugins_with([pay, hold])) as (_, stubs):
        started = await rerun(stubs, original.name, "wait")
        await eventually(lambda: "wait" in hold.held, what="the re-run's wait running")
    hold = HoldAgent()
    hold.release()
    async with serving(db_path, plugins=plugins_with([pay, hold])) as (_, stubs):
        events = await collect_events(stubs, started.name)
        again = await get_run(stubs, started.name)
    assert again.state == R.RUN_STATE_FAILED
    assert attempts(again)["book"] == 0
    assert compensated(events) == []


async def test_a_step_the_original_compensated_is_not_reused(db_path: str) -> None:
    pay = Switch(failing=True)
    async with serving(db_path, plugins=plugins_with([pay])) as (_, stubs):
        await create_workflow(stubs, "saga", SAGA)
        original_run = await start_run(stubs, "saga")
        original_events = await collect_events(stubs, original_run.name)
        original = await get_run(stubs, original_run.name)
        assert original.state == R.RUN_STATE_FAILED
        assert [step for _, step in compensated(original_events)] == [
            "hold",
            "hold",
            "book",
            "book",
        ]
        pay.failing = False
        again = await finish(stubs, (await rerun(stubs, original.name)).name)
    # Their effects were undone when the original failed: reusing their
    # outputs would build on bookings that no longer exist.
    assert again.state == R.RUN_STATE_SUCCEEDED
    assert attempts(again) == {"book": 1, "hold": 1, "pay": 1}
    assert not step_of(again, "book").reason


# -- idempotency: request_id ---------------------------------------------------------------


async def test_a_retried_rerun_returns_the_same_run_after_a_restart_too(db_path: str) -> None:
    fragile = FailsFirstCalls(1)
    async with serving(db_path, plugins=plugins_with([fragile])) as (_, stubs):
        await create_workflow(stubs, "flow", SPEC)
        original = await finish(stubs, (await start_run(stubs, "flow")).name)
        request = X.RerunRunRequest(name=original.name, request_id="retry-me")
        # Concurrent retries wait for the first call: one run.
        calls = [stubs.executions.RerunRun(request) for _ in range(3)]
        first, *others = [r.run for r in await asyncio.gather(*calls)]
        assert {r.name for r in others} == {first.name}
        assert (await stubs.executions.RerunRun(request)).run.name == first.name
        await finish(stubs, first.name)
    async with serving(db_path, plugins=plugins_with([fragile])) as (_, stubs):
        again = (await stubs.executions.RerunRun(request)).run
        listed = await stubs.executions.ListRuns(X.ListRunsRequest(workflow="workflows/flow"))
        with pytest.raises(grpc.aio.AioRpcError) as reused:
            await stubs.executions.RerunRun(
                X.RerunRunRequest(name=original.name, from_steps=["side"], request_id="retry-me")
            )
        # StartRun shares the namespace: the id names another request there.
        with pytest.raises(grpc.aio.AioRpcError) as started:
            await stubs.executions.StartRun(
                X.StartRunRequest(workflow="workflows/flow", request_id="retry-me")
            )
        with pytest.raises(grpc.aio.AioRpcError) as too_long:
            await stubs.executions.RerunRun(
                X.RerunRunRequest(name=original.name, request_id="x" * 129)
            )
    assert again.name == first.name
    assert again.state == R.RUN_STATE_SUCCEEDED
    assert len(listed.runs) == 2  # the original and one re-run
    assert fragile.calls == 2
    for raised in (reused, started):
        assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert error_info(raised.value).reason == "REQUEST_ID_REUSED"
    assert too_long.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(too_long.value)[0][0] == "request_id"


async def test_a_retried_bulk_rerun_reruns_the_same_originals_after_a_restart(
    db_path: str,
) -> None:
    # Every call fails: the re-runs fail too, so that by the retry the filter
    # (failed runs of `flow`) matches them as well; the retry must not re-run them.
    fragile = FailsFirstCalls(100)
    bulk = X.RerunRunsRequest(
        workflow="workflows/flow", states=[R.RUN_STATE_FAILED], request_id="nightly"
    )
    async with serving(db_path, plugins=plugins_with([fragile])) as (_, stubs):
        await create_workflow(stubs, "flow", SPEC)
        failed = [await finish(stubs, (await start_run(stubs, "flow")).name) for _ in range(2)]
        first = await stubs.executions.RerunRuns(bulk)
        for name in first.runs:
            assert (await finish(stubs, name)).state == R.RUN_STATE_FAILED
        retried = await stubs.executions.RerunRuns(bulk)
    async with serving(db_path, plugins=plugins_with([fragile])) as (_, stubs):
        restarted = await stubs.executions.RerunRuns(bulk)
        listed = await stubs.executions.ListRuns(X.ListRunsRequest(workflow="workflows/flow"))
        with pytest.raises(grpc.aio.AioRpcError) as other_filter:
            await stubs.executions.RerunRuns(
                X.RerunRunsRequest(workflow="workflows/flow", request_id="nightly")
            )
        # Without a request id the filter is read again: now four runs match.
        fresh = await stubs.executions.RerunRuns(
            X.RerunRunsRequest(workflow="workflows/flow", states=[R.RUN_STATE_FAILED])
        )
    assert sorted(first.originals) == sorted(r.name for r in failed)
    for response in (retried, restarted):
        assert list(response.originals) == list(first.originals)
        assert list(response.runs) == list(first.runs)
    assert len(listed.runs) == 4  # two originals, two re-runs
    assert other_filter.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_info(other_filter.value).reason == "REQUEST_ID_REUSED"
    assert len(fresh.runs) == 4


async def test_the_async_client_passes_the_request_id(db_path: str) -> None:
    fragile = FailsFirstCalls(100)
    async with serving(db_path, plugins=plugins_with([fragile])) as (server, stubs):
        await create_workflow(stubs, "flow", SPEC)
        original = await finish(stubs, (await start_run(stubs, "flow")).name)
        async with AsyncClient(f"127.0.0.1:{server.port}") as client:
            one = await client.rerun_run(original.name, request_id="client-1")
            again = await client.rerun_run(original.name, ["side"], request_id="client-2")
            retried = await client.rerun_run(original.name, request_id="client-1")
            bulk = await client.rerun_runs("flow", request_id="client-bulk")
            bulk_again = await client.rerun_runs("flow", request_id="client-bulk")
    assert retried.name == one.name != again.name
    assert list(bulk_again.runs) == list(bulk.runs)
    assert original.name in bulk.originals


async def test_a_retried_bulk_rerun_makes_the_reruns_missing_from_its_originals(
    db_path: str,
) -> None:
    # A re-run of the batch that is gone (as if a crash had come before it was
    # made; here it was deleted) is made by the retry, for the same original;
    # the others are returned as they are.
    fragile = FailsFirstCalls(100)
    bulk = X.RerunRunsRequest(workflow="workflows/flow", request_id="mend")
    async with serving(db_path, plugins=plugins_with([fragile])) as (_, stubs):
        await create_workflow(stubs, "flow", SPEC)
        for _ in range(2):
            await finish(stubs, (await start_run(stubs, "flow")).name)
        first = await stubs.executions.RerunRuns(bulk)
        for name in first.runs:
            await finish(stubs, name)
        await stubs.executions.DeleteRun(X.DeleteRunRequest(name=first.runs[1]))
        retried = await stubs.executions.RerunRuns(bulk)
        remade = await get_run(stubs, retried.runs[1])
    assert list(retried.originals) == list(first.originals)
    assert retried.runs[0] == first.runs[0]
    assert retried.runs[1] != first.runs[1]
    assert remade.rerun_of == first.originals[1]
