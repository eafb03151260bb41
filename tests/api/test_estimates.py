"""ValidateWorkflow estimates a run: from the stored workflow's finished runs
(p50 and p95), else the price table's bound on its LLM steps."""

from __future__ import annotations

import grpc
import pytest

from podium.core.clock import ManualClock
from podium.testing import (
    create_workflow,
    eventually,
    field_violations,
    get_run,
    make_spec,
    serving,
    start_run,
)
from podium.testing.values import money_nanos
from podium.v1 import run_pb2, workflow_service_pb2

W = workflow_service_pb2
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


async def test_with_history_the_estimate_is_the_runs_percentiles() -> None:
    clock = ManualClock(start=1_800_000_000.0)
    async with serving(clock=clock) as (_, stubs):
        await create_workflow(stubs, "fetcher", FLAKY)
        # The retry is due after 2 s; the clock moves 2..6 s: runs of 2..6 s.
        for seconds in (6, 2, 5, 3, 4):
            run = await start_run(stubs, "fetcher", {"i": seconds})
            await eventually(lambda: clock.sleepers > 0)
            clock.advance(seconds)

            async def ended(name: str = run.name) -> bool:
                return (await get_run(stubs, name)).state == run_pb2.RUN_STATE_SUCCEEDED

            await eventually(ended)
        response = await stubs.workflows.ValidateWorkflow(
            W.ValidateWorkflowRequest(spec=make_spec(FLAKY), workflow_id="fetcher")
        )
        unnamed = await stubs.workflows.ValidateWorkflow(
            W.ValidateWorkflowRequest(spec=make_spec(FLAKY))
        )
    estimate = response.estimate
    assert estimate.source == W.ESTIMATE_SOURCE_HISTORY and estimate.runs == 5
    assert estimate.p50_duration.ToSeconds() == 4 and estimate.p95_duration.ToSeconds() == 6
    assert money_nanos(estimate.p95_cost) == 0
    # Without the workflow's id there is no history to draw from.
    assert unnamed.estimate.source == W.ESTIMATE_SOURCE_PRICE_TABLE


async def test_without_history_the_estimate_bounds_the_llm_steps_cost() -> None:
    prompt = "x" * 40  # 10 tokens of template text
    spec = {
        "steps": [
            {
                "id": "ask",
                "agent": "llm",
                "config": {"model": "sim-large", "prompt": prompt, "max_tokens": 100},
            },
            {
                "id": "act",
                "agent": "react",
                "config": {
                    "model": "sim-small",
                    "prompt": prompt,
                    "max_tokens": 50,
                    "max_turns": 2,
                },
            },
            {"id": "echo", "agent": "echo"},
        ]
    }
    async with serving() as (server, stubs):
        response = await stubs.workflows.ValidateWorkflow(
            W.ValidateWorkflowRequest(spec=make_spec(spec), workflow_id="never-run")
        )
        prices = server.engine.services.governance.prices
        expected = prices.worst_case("simulated", "sim-large", 10, 100) + 2 * prices.worst_case(
            "simulated", "sim-small", 10, 50
        )
    estimate = response.estimate
    assert estimate.source == W.ESTIMATE_SOURCE_PRICE_TABLE
    assert expected > 0
    assert money_nanos(estimate.max_cost) == int(expected * 1_000_000_000)
    assert not estimate.HasField("p50_duration")
    assert "duration unknown" in estimate.note


async def test_a_malformed_workflow_id_is_refused() -> None:
    async with serving() as (_, stubs):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stubs.workflows.ValidateWorkflow(
                W.ValidateWorkflowRequest(spec=make_spec(FLAKY), workflow_id="Not An Id")
            )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(refused.value)] == ["workflow_id"]
