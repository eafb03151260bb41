"""GetWorkflowInsights through a real server: figures and recommendations
from the runs it stored, too little history said so, bad requests refused."""

from __future__ import annotations

import grpc
import pytest

from podium.core.clock import ManualClock
from podium.testing import (
    create_workflow,
    error_info,
    eventually,
    field_violations,
    get_run,
    serving,
    start_run,
)
from podium.v1 import control_service_pb2, run_pb2

C = control_service_pb2
START = 1_800_000_000.0
# A step failing its first attempt, retried after 2 s; its input differs per run.
FLAKY = {
    "steps": [
        {
            "id": "fetch",
            "agent": "flaky",
            "input": {"i": "input.i"},
            "config": {"fail_attempts": 1},
            "retry": [{"errorEquals": ["FlakyError"], "interval": "2s", "maxAttempts": 3}],
        }
    ]
}


async def run_retried(clock: ManualClock, stubs: object, i: int) -> None:
    run = await start_run(stubs, "fetcher", {"i": i})  # type: ignore[arg-type]
    await eventually(lambda: clock.sleepers > 0)
    clock.advance(2)

    async def ended() -> bool:
        found = await get_run(stubs, run.name)  # type: ignore[arg-type]
        return found.state == run_pb2.RUN_STATE_SUCCEEDED

    await eventually(ended)


async def test_insights_of_stored_runs_recommend_what_they_show() -> None:
    clock = ManualClock(start=START)
    async with serving(clock=clock) as (_, stubs):
        await create_workflow(stubs, "fetcher", FLAKY)
        for i in range(2):
            await run_retried(clock, stubs, i)
        early = await stubs.control.GetWorkflowInsights(
            C.GetWorkflowInsightsRequest(workflow="workflows/fetcher")
        )
        assert not early.insights.enough_history
        assert early.insights.runs == 2 and not early.insights.recommendations
        assert "only 2 finished runs;" in early.insights.note

        for i in range(2, 5):
            await run_retried(clock, stubs, i)
        found = (
            await stubs.control.GetWorkflowInsights(
                C.GetWorkflowInsightsRequest(workflow="workflows/fetcher")
            )
        ).insights
    assert found.workflow == "workflows/fetcher"
    assert found.runs == 5 and found.enough_history
    (step,) = found.steps
    assert (step.step_id, step.agent, step.executions) == ("fetch", "flaky", 5)
    assert step.retry_rate == 1.0 and step.failure_rate == 0.0
    assert dict(step.failure_types) == {"FlakyError": 5}
    # Each run: the failed attempt, 2 s of backoff on the manual clock, the retry.
    assert step.p50_duration.ToNanoseconds() == 2_000_000_000
    assert found.p95_run_duration.ToNanoseconds() == 2_000_000_000
    assert list(found.critical_path) == ["fetch"]
    (advice,) = found.recommendations
    assert advice.kind == C.RECOMMENDATION_KIND_FLAKY and advice.step_id == "fetch"
    assert advice.estimated_time_saving.ToNanoseconds() == 2_000_000_000
    assert "FlakyError x5" in advice.evidence


async def test_a_window_leaves_out_older_runs() -> None:
    clock = ManualClock(start=START)
    async with serving(clock=clock) as (_, stubs):
        await create_workflow(stubs, "fetcher", FLAKY)
        await run_retried(clock, stubs, 0)
        clock.advance(3600)
        await run_retried(clock, stubs, 1)
        request = C.GetWorkflowInsightsRequest(workflow="workflows/fetcher")
        request.window.FromSeconds(60)
        recent = (await stubs.control.GetWorkflowInsights(request)).insights
        every = (
            await stubs.control.GetWorkflowInsights(
                C.GetWorkflowInsightsRequest(workflow="workflows/fetcher")
            )
        ).insights
    assert (recent.runs, every.runs) == (1, 2)


async def test_bad_insights_requests_are_refused_with_the_field() -> None:
    async with serving() as (_, stubs):
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stubs.control.GetWorkflowInsights(
                C.GetWorkflowInsightsRequest(workflow="workflows/nope")
            )
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_info(missing.value).reason == "WORKFLOW_NOT_FOUND"
        with pytest.raises(grpc.aio.AioRpcError) as malformed:
            await stubs.control.GetWorkflowInsights(C.GetWorkflowInsightsRequest(workflow="x/y"))
        assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [f for f, _ in field_violations(malformed.value)] == ["workflow"]
        await create_workflow(stubs, "known", FLAKY)
        negative = C.GetWorkflowInsightsRequest(workflow="workflows/known")
        negative.window.FromSeconds(-5)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stubs.control.GetWorkflowInsights(negative)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [f for f, _ in field_violations(refused.value)] == ["window"]
