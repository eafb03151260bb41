"""The server's limits (podium.core.limits), at their defaults, through a real server: an
oversized definition is refused for its size before any other work, with
INVALID_ARGUMENT naming the limit; a runtime value over a limit fails its
step with LIMIT_EXCEEDED naming the limit; a huge chain validates."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from podium.core.limits import DEFAULTS, LIMIT_EXCEEDED, Limits
from podium.plugins.api import StepContext
from podium.testing import (
    Stubs,
    create_workflow,
    echo_step,
    field_violations,
    make_spec,
    plugins_with,
    run_to_end,
    serving,
    step_of,
)
from podium.v1 import run_pb2, workflow_pb2, workflow_service_pb2

W = workflow_service_pb2


def chain(length: int) -> workflow_pb2.WorkflowSpec:
    """s0 <- s1 <- ... each step reading its predecessor's output."""
    steps = [echo_step("s0")] + [
        echo_step(f"s{i}", f"s{i - 1}", input={"x": f"steps.s{i - 1}.output"})
        for i in range(1, length)
    ]
    return make_spec({"steps": steps})


async def test_a_chain_of_the_maximum_length_validates(stubs: Stubs) -> None:
    # Ancestor sets were O(n^2): this took gigabytes and seconds.
    response = await stubs.workflows.ValidateWorkflow(
        W.ValidateWorkflowRequest(spec=chain(DEFAULTS.max_steps))
    )
    assert len(response.levels) == DEFAULTS.max_steps
    assert list(response.critical_path) == [f"s{i}" for i in range(DEFAULTS.max_steps)]


async def test_a_reference_to_a_non_ancestor_is_still_refused(stubs: Stubs) -> None:
    spec = make_spec(
        {"steps": [echo_step("a"), echo_step("b", input={"x": "steps.a.output"}), echo_step("c")]}
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.workflows.ValidateWorkflow(W.ValidateWorkflowRequest(spec=spec))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    [(field, description)] = field_violations(caught.value)
    assert field == "spec.steps[1].input.x" and "not an ancestor" in description


@pytest.mark.parametrize("rpc", ["ValidateWorkflow", "CreateWorkflow"])
async def test_too_many_steps_are_refused_by_count(stubs: Stubs, rpc: str) -> None:
    # Steps that are wrong in every other way too: only the count is reported,
    # since nothing else of the definition is looked at.
    spec = workflow_pb2.WorkflowSpec(
        steps=[workflow_pb2.Step(id="X", agent="nope") for _ in range(DEFAULTS.max_steps + 1)]
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        if rpc == "ValidateWorkflow":
            await stubs.workflows.ValidateWorkflow(W.ValidateWorkflowRequest(spec=spec))
        else:
            await stubs.workflows.CreateWorkflow(
                W.CreateWorkflowRequest(workflow_id="big", spec=spec)
            )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    [(field, description)] = field_violations(caught.value)
    assert field == "spec.steps"
    assert "max_steps" in description and str(DEFAULTS.max_steps + 1) in description


async def test_a_request_over_the_message_size_is_refused_by_grpc(stubs: Stubs) -> None:
    spec = make_spec({"steps": [echo_step("a", input={"x": "'" + "a" * 5_000_000 + "'"})]})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.workflows.ValidateWorkflow(W.ValidateWorkflowRequest(spec=spec))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_fan_out_over_too_many_items_fails_naming_the_limit(stubs: Stubs) -> None:
    spec = {
        "steps": [
            echo_step(
                "each",
                forEach={"items": "input.items"},
                input={"value": "item"},
            )
        ]
    }
    await create_workflow(stubs, "fan-big", spec)
    run, _ = await run_to_end(
        stubs, "fan-big", {"items": list(range(DEFAULTS.max_fan_out_items + 1))}
    )
    assert run.state == run_pb2.RUN_STATE_FAILED
    each = step_of(run, "each")
    assert each.failure.type == LIMIT_EXCEEDED
    assert "max_fan_out_items" in each.failure.message
    assert len(each.attempts) == 0


GROWING = "'a'" + ".replace('', 'aaaaaaaaaa')" * 8  # 428 million characters if evaluated


async def test_an_expression_that_can_grow_a_string_unboundedly_is_refused(stubs: Stubs) -> None:
    spec = make_spec({"steps": [echo_step("a", input={"x": GROWING})]})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.workflows.ValidateWorkflow(W.ValidateWorkflowRequest(spec=spec))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    [(field, description)] = field_violations(caught.value)
    assert field == "spec.steps[0].input.x" and "max_expression_growth" in description


async def test_an_oversized_expression_result_fails_the_step_naming_the_limit(
    stubs: Stubs,
) -> None:
    # Growth by 10 * 10 (allowed statically) of a 20,000-character input: 2 million.
    grow = "input.text" + ".replace('', 'aaaaaaaaa')" * 2
    await create_workflow(stubs, "grow", {"steps": [echo_step("a", input={"x": grow})]})
    run, _ = await run_to_end(stubs, "grow", {"text": "b" * 20_000})
    assert run.state == run_pb2.RUN_STATE_FAILED
    failure = step_of(run, "a").failure
    assert "max_expression_result_size" in failure.message, failure


class TickRecorder:
    """Returns at once (never suspends) and notes how often the loop ran other
    tasks before each call: the fan-out must let them run between items."""

    name = "ticks"
    description = "Records the ticker's count at each call."
    version = "1"

    def __init__(self) -> None:
        self.ticks = 0
        self.seen: list[int] = []

    async def ticker(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0)

    async def run(self, ctx: StepContext) -> Any:
        self.seen.append(self.ticks)
        return ctx.input


@pytest.mark.parametrize("kind", ["forEach", "loop"])
async def test_a_step_of_instant_agent_calls_lets_the_loop_serve_others(kind: str) -> None:
    agent = TickRecorder()
    step: dict[str, Any] = {"id": "each", "agent": "ticks", "input": {"v": "1"}}
    if kind == "forEach":
        step["forEach"] = {"items": "input.items", "maxConcurrency": 1}
    else:
        step["loop"] = {"until": "false", "maxIterations": 100}
    async with serving(plugins=plugins_with([agent])) as (_, stubs):
        await create_workflow(stubs, "instant", {"steps": [step]})
        ticker = asyncio.create_task(agent.ticker())
        try:
            await run_to_end(stubs, "instant", {"items": list(range(100))})
        finally:
            ticker.cancel()
    assert len(agent.seen) == 100
    # Other tasks ran between every two calls (before: one worker ran them all in one go).
    assert all(b > a for a, b in zip(agent.seen, agent.seen[1:], strict=False)), agent.seen


# Each iteration's output holds the previous one: one level deeper each time.
NESTING = {
    "id": "nest",
    "agent": "echo",
    "input": {"previous": "previous"},
    "loop": {"until": "false", "maxIterations": DEFAULTS.max_expression_result_depth + 10},
}


async def test_a_loop_nesting_its_output_deeper_each_iteration_fails_naming_the_limit(
    stubs: Stubs,
) -> None:
    await create_workflow(stubs, "nesting", {"steps": [NESTING]})
    run, _ = await run_to_end(stubs, "nesting")
    assert run.state == run_pb2.RUN_STATE_FAILED
    failure = step_of(run, "nest").failure
    # echo wraps its input in one more level: its output is the first too deep.
    assert failure.type == "podium.InvalidOutput"
    assert "max_output_depth" in failure.message, failure
    assert step_of(run, "nest").iterations == DEFAULTS.max_output_depth


async def test_a_lowered_expression_depth_limit_stops_the_loop_sooner() -> None:
    async with serving(limits=Limits(max_expression_result_depth=5)) as (_, stubs):
        await create_workflow(stubs, "nesting", {"steps": [NESTING]})
        run, _ = await run_to_end(stubs, "nesting")
    assert run.state == run_pb2.RUN_STATE_FAILED
    failure = step_of(run, "nest").failure
    assert "deeper than 5 levels (max_expression_result_depth)" in failure.message, failure
