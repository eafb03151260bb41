"""The server's limits (podium.core.limits), at their defaults, through a real server: an
oversized definition is refused for its size before any other work, with
INVALID_ARGUMENT naming the limit; a runtime value over a limit fails its
step with LIMIT_EXCEEDED naming the limit; a huge chain validates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from podium.core import limits
from podium.core.limits import DEFAULTS, LIMIT_EXCEEDED, LimitError, Limits
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
    start_run,
    step_of,
)
from podium.v1 import execution_service_pb2, run_pb2, workflow_pb2, workflow_service_pb2

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


# -- every limit is a setting: lowered, it is enforced and named ------------------------------

LOWERED = Limits(
    max_steps=5,
    max_loop_iterations=10,
    max_fan_out_items=3,
    max_expression_growth=5,
    max_expression_result_size=100,
    max_input_bytes=100,
    max_output_depth=3,
    max_message_bytes=10_000,
)


@pytest.fixture
async def lowered(db_path: str) -> AsyncIterator[Stubs]:
    async with serving(db_path, limits=LOWERED) as (_, stubs):
        yield stubs


async def invalid_definition(stubs: Stubs, spec: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.workflows.ValidateWorkflow(W.ValidateWorkflowRequest(spec=make_spec(spec)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    [violation] = field_violations(caught.value)
    return violation


async def test_a_lowered_step_limit_is_enforced_and_named(lowered: Stubs) -> None:
    await lowered.workflows.ValidateWorkflow(W.ValidateWorkflowRequest(spec=chain(5)))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await lowered.workflows.ValidateWorkflow(W.ValidateWorkflowRequest(spec=chain(6)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [("spec.steps", "at most 5 steps (max_steps), got 6")]


async def test_a_lowered_loop_limit_is_enforced_and_named(lowered: Stubs) -> None:
    loop = {"id": "l", "agent": "echo", "loop": {"until": "true", "maxIterations": 11}}
    field, description = await invalid_definition(lowered, {"steps": [loop]})
    assert field == "spec.steps[0].loop.max_iterations"
    assert "between 1 and the server limit 10 (max_loop_iterations)" in description


async def test_a_lowered_growth_limit_is_enforced_and_named(lowered: Stubs) -> None:
    grows = "'a'.replace('', 'aaaaaaaaaa')"  # up to 11 times longer, allowed by default
    field, description = await invalid_definition(
        lowered, {"steps": [echo_step("a", input={"x": grows})]}
    )
    assert field == "spec.steps[0].input.x" and "than 5 (max_expression_growth)" in description


async def test_a_lowered_fan_out_limit_is_enforced_and_named(lowered: Stubs) -> None:
    spec = {"steps": [echo_step("each", forEach={"items": "input.items"}, input={"v": "item"})]}
    await create_workflow(lowered, "fan", spec)
    done, _ = await run_to_end(lowered, "fan", {"items": [1, 2, 3]})
    assert done.state == run_pb2.RUN_STATE_SUCCEEDED
    run, _ = await run_to_end(lowered, "fan", {"items": [1, 2, 3, 4]})
    assert run.state == run_pb2.RUN_STATE_FAILED
    failure = step_of(run, "each").failure
    assert failure.type == LIMIT_EXCEEDED
    assert "at most 3 are allowed (max_fan_out_items)" in failure.message


async def test_a_lowered_expression_size_limit_is_enforced_and_named(lowered: Stubs) -> None:
    twice = {"steps": [echo_step("a", input={"x": "input.t + input.t"})]}
    await create_workflow(lowered, "copy", twice)
    ok, _ = await run_to_end(lowered, "copy", {"t": "b" * 50})
    assert ok.state == run_pb2.RUN_STATE_SUCCEEDED
    run, _ = await run_to_end(lowered, "copy", {"t": "b" * 51})
    assert run.state == run_pb2.RUN_STATE_FAILED
    assert "larger than 100 (max_expression_result_size" in step_of(run, "a").failure.message


async def test_a_lowered_input_limit_refuses_the_run_and_stores_nothing(lowered: Stubs) -> None:
    await create_workflow(lowered, "hello", {"steps": [echo_step("a")]})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await start_run(lowered, "hello", {"text": "b" * 100})
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    [(field, description)] = field_violations(caught.value)
    assert field == "input" and "over the limit of 100 bytes" in description
    assert "max_input_bytes" in description
    listed = await lowered.executions.ListRuns(execution_service_pb2.ListRunsRequest())
    assert list(listed.runs) == []
    await start_run(lowered, "hello", {"text": "b" * 50})


async def test_a_lowered_output_depth_limit_is_enforced_and_named(lowered: Stubs) -> None:
    # echo returns its input: {"x": {"y": {"z": 1}}} is three levels, one more is too deep.
    await create_workflow(lowered, "deep", {"steps": [echo_step("a", input={"x": "input.x"})]})
    ok, _ = await run_to_end(lowered, "deep", {"x": {"y": {"z": 1}}})
    assert ok.state == run_pb2.RUN_STATE_SUCCEEDED
    run, _ = await run_to_end(lowered, "deep", {"x": {"y": {"z": [1]}}})
    failure = step_of(run, "a").failure
    assert failure.type == "podium.InvalidOutput"
    assert "deeper than 3 levels (the server's max_output_depth)" in failure.message


async def test_a_lowered_message_size_is_enforced_by_grpc(lowered: Stubs) -> None:
    spec = make_spec({"steps": [echo_step("a", input={"x": "'" + "a" * 20_000 + "'"})]})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await lowered.workflows.ValidateWorkflow(W.ValidateWorkflowRequest(spec=spec))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_the_limits_are_given_back_when_the_server_stops(db_path: str) -> None:
    async with serving(db_path, limits=LOWERED):
        assert limits.current() == LOWERED
        # Limits are per process: a second server may only share them.
        with pytest.raises(LimitError, match="other limits"):
            async with serving(limits=Limits(max_steps=6)):
                pass
        async with serving(limits=LOWERED):
            pass
        assert limits.current() == LOWERED
    assert limits.current() == DEFAULTS


async def test_podium_limit_variables_set_the_limits(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODIUM_MAX_STEPS", "2")
    async with serving(db_path) as (_, stubs):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stubs.workflows.ValidateWorkflow(W.ValidateWorkflowRequest(spec=chain(3)))
    assert field_violations(caught.value) == [("spec.steps", "at most 2 steps (max_steps), got 3")]


async def test_a_bad_limit_variable_stops_the_start(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODIUM_MAX_FAN_OUT_ITEMS", "many")
    with pytest.raises(LimitError, match="PODIUM_MAX_FAN_OUT_ITEMS must be an integer"):
        async with serving(db_path):
            pass
    assert limits.current() == DEFAULTS
