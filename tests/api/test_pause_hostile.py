"""Hostile PauseRun / ResumeRun through gRPC: resume of a run that is not
paused (a no-op, no event), pause and resume of a finished run
(RUN_ALREADY_ENDED), a run paused while queued behind a concurrency quota, an
approval resolved while paused, a paused fan-out cancelled, and a hypothesis
fuzz of both requests asserting the documented codes and an unchanged DB."""

from __future__ import annotations

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podium.governance.policy import Policy
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
    resolve_approval,
    run_to_end,
    serving,
    start_run,
    step_of,
    step_reaches,
)
from podium.v1 import event_pb2, execution_service_pb2, run_pb2
from tests.api.test_pause import pause, resume, settle

E = event_pb2
R = run_pb2
X = execution_service_pb2


async def test_resume_of_a_running_run_is_a_no_op(db_path: str) -> None:
    hold = HoldAgent()
    spec = {"steps": [{"id": "slow", "agent": "hold"}]}
    async with serving(db_path, plugins=plugins_with([hold])) as (_, stubs):
        await create_workflow(stubs, "w", spec)
        run = await start_run(stubs, "w")
        await eventually(lambda: "slow" in hold.held, what="slow running")
        assert (await resume(stubs, run.name)).state == R.RUN_STATE_RUNNING
        hold.release()
        events = await collect_events(stubs, run.name)
    assert of_type(events, E.RUN_EVENT_TYPE_RUN_RESUMED) == []
    assert events[-1].type == E.RUN_EVENT_TYPE_RUN_SUCCEEDED


async def test_pause_and_resume_of_a_finished_run(stubs: Stubs) -> None:
    await create_workflow(stubs, "done", {"steps": [echo_step("a")]})
    run, _ = await run_to_end(stubs, "done")
    for call in (pause, resume):
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await call(stubs, run.name)
        assert ended.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_info(ended.value).reason == "RUN_ALREADY_ENDED"
    assert (await get_run(stubs, run.name)).state == R.RUN_STATE_SUCCEEDED


async def test_the_last_step_finishing_while_paused_ends_the_run(db_path: str) -> None:
    """Nothing is held: the run has nothing left to start, so it ends."""
    hold = HoldAgent()
    async with serving(db_path, plugins=plugins_with([hold])) as (_, stubs):
        await create_workflow(stubs, "last", {"steps": [{"id": "slow", "agent": "hold"}]})
        run = await start_run(stubs, "last")
        await eventually(lambda: "slow" in hold.held, what="slow running")
        await pause(stubs, run.name)
        hold.release()
        events = await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await resume(stubs, run.name)
    assert final.state == R.RUN_STATE_SUCCEEDED
    assert events[-1].type == E.RUN_EVENT_TYPE_RUN_SUCCEEDED
    assert error_info(ended.value).reason == "RUN_ALREADY_ENDED"


ONE_AT_A_TIME = Policy.model_validate(
    {"quotas": [{"name": "one", "scope": "workflow:q", "dimension": "concurrency", "limit": 1}]}
)


async def test_a_run_paused_while_queued_starts_nothing_until_resumed(db_path: str) -> None:
    hold = HoldAgent()
    spec = {"steps": [{"id": "a", "agent": "hold"}]}
    async with serving(db_path, policy=ONE_AT_A_TIME, plugins=plugins_with([hold])) as (_, s):
        await create_workflow(s, "q", spec)
        first = await start_run(s, "q")
        queued = await start_run(s, "q")
        await step_reaches(s, first.name, "a", R.STEP_STATE_RUNNING)
        assert (await get_run(s, queued.name)).state == R.RUN_STATE_PENDING
        assert (await pause(s, queued.name)).state == R.RUN_STATE_PAUSED
        hold.release()  # the first ends; the queued run is admitted, paused
        assert (await run_to_end_of(s, first.name)).state == R.RUN_STATE_SUCCEEDED
        current = await settle(s, queued.name)
        assert current.state == R.RUN_STATE_PAUSED
        assert step_of(current, "a").attempts == []
        await resume(s, queued.name)
        await collect_events(s, queued.name)
        final = await get_run(s, queued.name)
    assert final.state == R.RUN_STATE_SUCCEEDED


async def run_to_end_of(stubs: Stubs, name: str) -> run_pb2.Run:
    await collect_events(stubs, name)
    return await get_run(stubs, name)


async def test_an_approval_resolved_while_paused_starts_nothing(stubs: Stubs) -> None:
    spec = {"steps": [{"id": "gate", "approval": {"prompt": "ok?"}}, echo_step("next", "gate")]}
    await create_workflow(stubs, "approve", spec)
    run = await start_run(stubs, "approve")
    await step_reaches(stubs, run.name, "gate", R.STEP_STATE_WAITING)
    assert (await get_run(stubs, run.name)).state == R.RUN_STATE_WAITING_APPROVAL
    await pause(stubs, run.name)
    await resolve_approval(stubs, run.name, "gate")
    current = await settle(stubs, run.name)
    assert current.state == R.RUN_STATE_PAUSED
    assert step_of(current, "next").state == R.STEP_STATE_PENDING
    assert (await resume(stubs, run.name)).state in (R.RUN_STATE_RUNNING, R.RUN_STATE_SUCCEEDED)
    final = await run_to_end_of(stubs, run.name)
    assert final.state == R.RUN_STATE_SUCCEEDED


async def test_pause_then_resume_while_waiting_approval_goes_back_to_waiting(
    stubs: Stubs,
) -> None:
    spec = {"steps": [{"id": "gate", "approval": {"prompt": "ok?"}}]}
    await create_workflow(stubs, "approve2", spec)
    run = await start_run(stubs, "approve2")
    await step_reaches(stubs, run.name, "gate", R.STEP_STATE_WAITING)
    await pause(stubs, run.name)
    assert (await resume(stubs, run.name)).state == R.RUN_STATE_WAITING_APPROVAL
    await resolve_approval(stubs, run.name, "gate")
    assert (await run_to_end_of(stubs, run.name)).state == R.RUN_STATE_SUCCEEDED


async def test_a_paused_fan_out_with_items_running_is_cancelled(db_path: str) -> None:
    hold = HoldAgent()
    spec = {
        "steps": [
            {
                "id": "each",
                "agent": "hold",
                "forEach": {"items": "input.items", "maxConcurrency": 2},
                "input": {"value": "item"},
            }
        ]
    }
    async with serving(db_path, plugins=plugins_with([hold])) as (_, stubs):
        await create_workflow(stubs, "fan", spec)
        run = await start_run(stubs, "fan", {"items": list(range(5))})
        await eventually(lambda: len(hold.held) == 2, what="two items running")
        await pause(stubs, run.name)
        cancelled = (await stubs.executions.CancelRun(X.CancelRunRequest(name=run.name))).run
        events = await collect_events(stubs, run.name)
        final = await get_run(stubs, run.name)
    assert cancelled.state == R.RUN_STATE_CANCELLED
    assert final.state == R.RUN_STATE_CANCELLED
    assert len(of_type(events, E.RUN_EVENT_TYPE_ITEM_STARTED)) == 2
    assert len(step_of(final, "each").attempts) == 2


NAMES = st.one_of(
    st.text(max_size=40),
    st.text(max_size=40).map(lambda t: f"runs/{t}"),
    st.sampled_from(["", "runs/", "runs/a/b", "workflows/x", "runs/\x00", "RUNS/x"]),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_fuzzed_pause_and_resume_get_documented_codes_and_change_nothing(
    stubs: Stubs, data: st.DataObject
) -> None:
    runs = (await stubs.executions.ListRuns(X.ListRunsRequest(page_size=100))).runs
    if not runs:
        await create_workflow(stubs, "fz", {"steps": [echo_step("a")]})
        await run_to_end(stubs, "fz")
        runs = (await stubs.executions.ListRuns(X.ListRunsRequest(page_size=100))).runs
    before = [(r.name, r.state, r.end_time.ToNanoseconds()) for r in runs]
    name = data.draw(NAMES, label="name")
    reason = data.draw(st.text(max_size=200), label="reason")
    call = data.draw(st.sampled_from(["pause", "resume"]), label="call")
    try:
        if call == "pause":
            await stubs.executions.PauseRun(X.PauseRunRequest(name=name, reason=reason))
        else:
            await stubs.executions.ResumeRun(X.ResumeRunRequest(name=name))
    except grpc.aio.AioRpcError as error:
        assert error.code() in (
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.FAILED_PRECONDITION,
        ), error
        assert error_info(error).reason
    else:
        pytest.fail(f"{call} of {name!r} succeeded")
    after = (await stubs.executions.ListRuns(X.ListRunsRequest(page_size=100))).runs
    assert [(r.name, r.state, r.end_time.ToNanoseconds()) for r in after] == before


async def test_an_overlong_reason_is_refused(db_path: str) -> None:
    hold = HoldAgent()
    async with serving(db_path, plugins=plugins_with([hold])) as (_, stubs):
        await create_workflow(stubs, "long", {"steps": [{"id": "slow", "agent": "hold"}]})
        run = await start_run(stubs, "long")
        await eventually(lambda: "slow" in hold.held, what="slow running")
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await pause(stubs, run.name, "x" * 1_000_000)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "reason" in (bad.value.details() or "")
        assert (await get_run(stubs, run.name)).state == R.RUN_STATE_RUNNING
        hold.release()
        await collect_events(stubs, run.name)


async def test_an_overlong_cancel_reason_or_approval_comment_is_refused(db_path: str) -> None:
    async with serving(db_path) as (_, stubs):
        await create_workflow(
            stubs, "gated", {"steps": [{"id": "gate", "approval": {"prompt": "ok?"}}]}
        )
        run = await start_run(stubs, "gated")
        await step_reaches(stubs, run.name, "gate", R.STEP_STATE_WAITING)
        with pytest.raises(grpc.aio.AioRpcError) as bad_cancel:
            await stubs.executions.CancelRun(
                execution_service_pb2.CancelRunRequest(name=run.name, reason="x" * 1001)
            )
        with pytest.raises(grpc.aio.AioRpcError) as bad_comment:
            await stubs.executions.ResolveApproval(
                execution_service_pb2.ResolveApprovalRequest(
                    run=run.name,
                    step_id="gate",
                    decision=event_pb2.APPROVAL_DECISION_APPROVE,
                    comment="x" * 1001,
                )
            )
        for bad, field in ((bad_cancel, "reason"), (bad_comment, "comment")):
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in (bad.value.details() or "")
        # Nothing changed: the run still waits, and a sentence still passes.
        assert (await get_run(stubs, run.name)).state == R.RUN_STATE_WAITING_APPROVAL
        await stubs.executions.CancelRun(
            execution_service_pb2.CancelRunRequest(name=run.name, reason="x" * 1000)
        )
        assert (await get_run(stubs, run.name)).state == R.RUN_STATE_CANCELLED
