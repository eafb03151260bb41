"""Child workflows (`workflow` steps) through a real server: the child's
output is the step's, its failure fails the step, cancelling the parent
cancels the child, the child's cost rolls up into the parent's and the
parent's max_cost bounds parent and children together, the depth limit
(recursion included), ListRuns by parent, and CreateWorkflow's checks.
A kill -9 while the parent waits: tests/e2e/test_child_crash.py."""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal
from typing import Any

import grpc
import pytest

from podium.core.clock import ManualClock
from podium.core.limits import Limits
from podium.plugins.api import AgentError, StepContext
from podium.testing import (
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    error_info,
    eventually,
    field_violations,
    get_run,
    plain,
    plugins_with,
    run_to_end,
    serving,
    start_run,
    step_of,
)
from podium.testing.values import money_nanos
from podium.testing.waiting import HANG_TIMEOUT
from podium.v1 import common_pb2, event_pb2, execution_service_pb2, progress_service_pb2, run_pb2

E = event_pb2
R = run_pb2
X = execution_service_pb2
SIM_SMALL = (Decimal("0.50"), Decimal("1.50"))  # USD per million input / output tokens
PROMPT = "Summarize the quarterly report"


def child_step(step_id: str, name: str, *depends_on: str, **input: str) -> dict[str, Any]:
    return {
        "id": step_id,
        "dependsOn": list(depends_on),
        "workflow": {"name": name, "input": input},
    }


def llm(step_id: str, *depends_on: str, max_tokens: int = 5) -> dict[str, Any]:
    return {
        "id": step_id,
        "agent": "llm",
        "dependsOn": list(depends_on),
        "config": {"prompt": PROMPT, "max_tokens": max_tokens},
        "onFailure": "FAILURE_POLICY_CONTINUE",
    }


def small_cost(max_tokens: int) -> Decimal:
    """One sim-small call cut at `max_tokens` (see test_llm_gateway.py)."""
    input_tokens = math.ceil(len(PROMPT) / 4)
    return (input_tokens * SIM_SMALL[0] + max_tokens * SIM_SMALL[1]) / Decimal(1_000_000)


def usd(amount: Decimal) -> common_pb2.Money:
    nanos = int(amount * 1_000_000_000)
    return common_pb2.Money(currency_code="USD", units=nanos // 10**9, nanos=nanos % 10**9)


async def children_of(stubs: Stubs, run: str) -> list[R.Run]:
    response = await stubs.executions.ListRuns(X.ListRunsRequest(parent_run=run))
    return list(response.runs)


async def test_the_childs_output_is_the_steps_and_the_child_links_to_its_parent() -> None:
    async with serving() as (_, stubs):
        await create_workflow(
            stubs,
            "inner",
            {
                "steps": [echo_step("say", input={"said": "input.word"})],
                "output": {"said": "steps.say.output.said"},
            },
        )
        await create_workflow(
            stubs,
            "outer",
            {
                "steps": [
                    child_step("sub", "inner", word="input.word + '!'"),
                    echo_step("after", "sub", input={"got": "steps.sub.output.said"}),
                ]
            },
        )
        run, _ = await run_to_end(stubs, "outer", {"word": "hello"})
        (child,) = await children_of(stubs, run.name)
        child = await get_run(stubs, child.name)
        others = await stubs.executions.ListRuns(X.ListRunsRequest())
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    assert plain(step_of(run, "sub").output) == {"said": "hello!"}
    assert plain(step_of(run, "sub").input) == {"word": "hello!"}
    assert plain(step_of(run, "after").output) == {"got": "hello!"}
    assert (child.parent_run, child.parent_step, child.depth) == (run.name, "sub", 1)
    assert child.workflow == "workflows/inner"
    assert child.state == R.RUN_STATE_SUCCEEDED
    assert (run.parent_run, run.depth) == ("", 0)
    assert {r.name for r in others.runs} == {run.name, child.name}


async def test_the_childs_failure_fails_the_step_with_its_type_and_run() -> None:
    inner = {
        "steps": [
            {
                "id": "boom",
                "agent": "flaky",
                "config": {"fail_attempts": 5, "error": "Broken", "message": "it broke"},
            }
        ]
    }
    async with serving() as (_, stubs):
        await create_workflow(stubs, "inner", inner)
        await create_workflow(
            stubs, "outer", {"steps": [child_step("sub", "inner"), echo_step("after", "sub")]}
        )
        run, _ = await run_to_end(stubs, "outer")
        (child,) = await children_of(stubs, run.name)
    assert child.state == R.RUN_STATE_FAILED
    assert run.state == R.RUN_STATE_FAILED
    failed = step_of(run, "sub")
    assert failed.state == R.STEP_STATE_FAILED
    assert failed.failure.type == child.failure.type
    assert child.name in failed.failure.message
    assert "it broke" in failed.failure.message
    assert step_of(run, "after").state == R.STEP_STATE_SKIPPED


async def test_cancelling_the_parent_cancels_the_child() -> None:
    inner = {"steps": [{"id": "gate", "waitForSignal": {"name": "go"}}]}
    async with serving() as (_, stubs):
        await create_workflow(stubs, "inner", inner)
        await create_workflow(stubs, "outer", {"steps": [child_step("sub", "inner")]})
        run = await start_run(stubs, "outer")

        async def child_waits() -> bool:
            children = await children_of(stubs, run.name)
            if not children:
                return False
            view = await get_run(stubs, children[0].name)
            return step_of(view, "gate").state == R.STEP_STATE_WAITING

        await eventually(child_waits, what="the child waiting for its signal")
        parent = await get_run(stubs, run.name)
        assert step_of(parent, "sub").state == R.STEP_STATE_WAITING
        (child,) = await children_of(stubs, run.name)
        assert child.name in step_of(parent, "sub").reason
        await stubs.executions.CancelRun(X.CancelRunRequest(name=run.name, reason="stop"))

        async def child_cancelled() -> bool:
            return (await get_run(stubs, child.name)).state == R.RUN_STATE_CANCELLED

        await eventually(child_cancelled, what="the child cancelled")
        parent = await get_run(stubs, run.name)
    assert parent.state == R.RUN_STATE_CANCELLED
    assert step_of(parent, "sub").state == R.STEP_STATE_CANCELLED


async def test_the_childs_cost_rolls_up_and_the_parents_max_cost_bounds_both() -> None:
    cost = small_cost(5)
    # Room for three calls in all: the parent's one, then two of the child's three.
    inner = {"steps": [llm("a"), llm("b", "a"), llm("c", "b")]}
    outer = {"steps": [llm("first"), child_step("sub", "inner", "first")]}
    async with serving() as (_, stubs):
        await create_workflow(stubs, "inner", inner)
        await create_workflow(stubs, "outer", outer)
        run, _ = await run_to_end(stubs, "outer", max_cost=usd(3 * cost))
        (child,) = await children_of(stubs, run.name)
        child = await get_run(stubs, child.name)
    assert child.state == R.RUN_STATE_PARTIALLY_SUCCEEDED
    assert money_nanos(child.max_cost) == money_nanos(usd(2 * cost))
    assert [step_of(child, s).state for s in "abc"] == [
        R.STEP_STATE_SUCCEEDED,
        R.STEP_STATE_SUCCEEDED,
        R.STEP_STATE_FAILED,
    ]
    assert step_of(child, "c").failure.type == "podium.BudgetExceeded"
    assert money_nanos(child.cost) == money_nanos(usd(2 * cost))
    assert money_nanos(step_of(run, "sub").cost) == money_nanos(child.cost)
    # Overshoot 0: parent and child spent exactly the parent's ceiling.
    assert money_nanos(run.cost) == money_nanos(usd(3 * cost))
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure


async def test_a_child_that_can_never_fit_fails_with_the_figures_and_starts_nothing() -> None:
    cost = small_cost(5)
    inner = {"steps": [llm("a")]}
    outer = {"steps": [llm("first"), child_step("sub", "inner", "first"), llm("last", "sub")]}
    async with serving() as (_, stubs):
        await create_workflow(stubs, "inner", inner)
        await create_workflow(stubs, "outer", outer)
        run, events = await run_to_end(stubs, "outer", max_cost=usd(cost))
        children = await children_of(stubs, run.name)
    # The parent's settled spend is at its ceiling: no room can ever come back.
    assert children == []
    sub = step_of(run, "sub")
    assert sub.state == R.STEP_STATE_FAILED
    assert sub.failure.type == "podium.BudgetExceeded"
    assert f"limit {cost}" in sub.failure.message
    assert f"spent {cost}" in sub.failure.message
    assert not [e for e in events if e.type == E.RUN_EVENT_TYPE_STEP_WAITING]
    assert money_nanos(run.cost) == money_nanos(usd(cost))


async def test_a_child_waits_for_room_another_child_holds_then_starts() -> None:
    cost = small_cost(5)
    # Each child waits for its signal, then makes one call: the first child
    # holds the parent's whole ceiling (two calls' worth) while it runs.
    inner = {"steps": [{"id": "gate", "waitForSignal": {"name": "go"}}, llm("a", "gate")]}
    outer = {"steps": [child_step("one", "inner"), child_step("two", "inner")]}
    async with serving() as (_, stubs):
        await create_workflow(stubs, "inner", inner)
        await create_workflow(stubs, "outer", outer)
        run = await start_run(stubs, "outer", max_cost=usd(2 * cost))
        budget = f"budget:run:{run.name.removeprefix('runs/')}"

        async def one_waits_for_room() -> bool:
            parent = await get_run(stubs, run.name)
            reasons = {step_of(parent, s).reason for s in ("one", "two")}
            return budget in reasons and len(await children_of(stubs, run.name)) == 1

        await eventually(one_waits_for_room, what="a step waiting for the parent's budget")
        parent = await get_run(stubs, run.name)
        waiting = next(s for s in ("one", "two") if step_of(parent, s).reason == budget)
        assert step_of(parent, waiting).state == R.STEP_STATE_WAITING
        (first,) = await children_of(stubs, run.name)
        assert money_nanos(first.max_cost) == money_nanos(usd(2 * cost))
        await stubs.executions.SignalRun(X.SignalRunRequest(run=first.name, name="go"))

        async def second_child() -> bool:
            return len(await children_of(stubs, run.name)) == 2

        await eventually(second_child, what="the second child started")
        (second,) = [c for c in await children_of(stubs, run.name) if c.name != first.name]
        await stubs.executions.SignalRun(X.SignalRunRequest(run=second.name, name="go"))
        events = await collect_events(stubs, run.name)
        run = await get_run(stubs, run.name)
        second = await get_run(stubs, second.name)
    # The first child spent one call of its two: the other came back, and the
    # second child got exactly that.
    assert money_nanos(second.max_cost) == money_nanos(usd(cost))
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    assert money_nanos(run.cost) == money_nanos(usd(2 * cost))
    waits = [e.message for e in events if e.type == E.RUN_EVENT_TYPE_STEP_WAITING]
    assert budget in waits


async def test_after_a_restart_a_waiting_child_step_still_waits_for_the_running_sibling(
    db_path: str,
) -> None:
    # The running child's ceiling is held again before the waiting step looks
    # for room: it must not see that room as free because the sibling's step
    # has not been resumed yet.
    cost = small_cost(5)
    inner = {"steps": [{"id": "gate", "waitForSignal": {"name": "go"}}, llm("a", "gate")]}
    # The step that waits comes first in the run's steps (it is resumed first);
    # it waits because `early`, with no step to wait for, started its child first.
    outer = {
        "steps": [
            echo_step("pre", delay_ms=50),
            child_step("late", "inner", "pre"),
            child_step("early", "inner"),
        ]
    }
    async with serving(db_path) as (_, stubs):
        await create_workflow(stubs, "inner", inner)
        await create_workflow(stubs, "outer", outer)
        run = await start_run(stubs, "outer", max_cost=usd(2 * cost))
        budget = f"budget:run:{run.name.removeprefix('runs/')}"

        async def one_waits_for_room() -> bool:
            parent = await get_run(stubs, run.name)
            reasons = {step_of(parent, "late").reason}
            return budget in reasons and len(await children_of(stubs, run.name)) == 1

        await eventually(one_waits_for_room, what="a step waiting for the parent's budget")
        parent = await get_run(stubs, run.name)
        waiting = "late"
        (first,) = await children_of(stubs, run.name)
        before = parent.last_sequence
    async with serving(db_path) as (_, stubs):

        async def next_wait() -> str:
            """The message of `late`'s first STEP_WAITING since the restart."""
            request = progress_service_pb2.WatchRunRequest(run=run.name, after_sequence=before)
            call = stubs.progress.WatchRun(request)
            try:
                async for response in call:
                    for e in response.events:
                        if e.type == E.RUN_EVENT_TYPE_STEP_WAITING and e.step_id == waiting:
                            return e.message
            finally:
                call.cancel()
            raise AssertionError("the run ended")

        # Resumed, the step looks for room again and waits again (rather than
        # starting a child with the room the running one holds).
        assert await asyncio.wait_for(next_wait(), HANG_TIMEOUT) == budget
        assert [c.name for c in await children_of(stubs, run.name)] == [first.name]
        await stubs.executions.SignalRun(X.SignalRunRequest(run=first.name, name="go"))

        async def second_child() -> bool:
            return len(await children_of(stubs, run.name)) == 2

        await eventually(second_child, what="the second child started")
        (second,) = [c for c in await children_of(stubs, run.name) if c.name != first.name]
        await stubs.executions.SignalRun(X.SignalRunRequest(run=second.name, name="go"))
        await collect_events(stubs, run.name)
        run = await get_run(stubs, run.name)
        second = await get_run(stubs, second.name)
    assert money_nanos(second.max_cost) == money_nanos(usd(cost))
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    assert money_nanos(run.cost) == money_nanos(usd(2 * cost))


class FailsFirstCalls:
    """Fails its first `failures` calls across runs (each child run is new, so
    a step that fails per attempt would fail every child alike)."""

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
        return {"call": self.calls}


FRAGILE_INNER = {
    "steps": [llm("a"), {"id": "b", "agent": "fails-first", "dependsOn": ["a"]}],
    "output": {"call": "steps.b.output.call"},
}


def retried(max_attempts: int) -> dict[str, Any]:
    step = child_step("sub", "inner")
    step["retry"] = [{"errorEquals": ["Broken"], "interval": "0.001s", "maxAttempts": max_attempts}]
    return {"steps": [step]}


async def test_a_failed_child_is_retried_per_the_steps_policy_with_a_new_child() -> None:
    cost = small_cost(5)
    fragile = FailsFirstCalls(2)
    async with serving(plugins=plugins_with([fragile])) as (_, stubs):
        await create_workflow(stubs, "inner", FRAGILE_INNER)
        await create_workflow(stubs, "outer", retried(3))
        run, events = await run_to_end(stubs, "outer")
        children = [await get_run(stubs, c.name) for c in await children_of(stubs, run.name)]
    sub = step_of(run, "sub")
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    assert plain(sub.output) == {"call": 3}
    assert [a.state for a in sub.attempts] == [
        R.ATTEMPT_STATE_FAILED,
        R.ATTEMPT_STATE_FAILED,
        R.ATTEMPT_STATE_SUCCEEDED,
    ]
    assert "Broken" in sub.attempts[0].failure.type
    # One child per attempt, all linked to the same step.
    assert len({c.name for c in children}) == 3
    assert {(c.parent_run, c.parent_step) for c in children} == {(run.name, "sub")}
    assert sorted(c.state for c in children) == sorted(
        [R.RUN_STATE_FAILED, R.RUN_STATE_FAILED, R.RUN_STATE_SUCCEEDED]
    )
    # Every child's cost counts: three calls of `a`.
    assert money_nanos(sub.cost) == money_nanos(usd(3 * cost))
    assert money_nanos(run.cost) == money_nanos(usd(3 * cost))
    assert len([e for e in events if e.type == E.RUN_EVENT_TYPE_STEP_RETRYING]) == 2


async def test_a_child_failing_past_the_policy_fails_the_step() -> None:
    fragile = FailsFirstCalls(5)
    async with serving(plugins=plugins_with([fragile])) as (_, stubs):
        await create_workflow(stubs, "inner", FRAGILE_INNER)
        await create_workflow(stubs, "outer", retried(2))
        run, _ = await run_to_end(stubs, "outer")
        children = await children_of(stubs, run.name)
    sub = step_of(run, "sub")
    assert run.state == R.RUN_STATE_FAILED
    assert [a.state for a in sub.attempts] == [R.ATTEMPT_STATE_FAILED] * 2
    assert len(children) == 2
    assert sub.failure.type == "Broken"
    assert fragile.calls == 2


async def test_children_nest_up_to_the_depth_limit_and_recursion_stops_there() -> None:
    recursive = {
        "steps": [
            echo_step("here", input={"n": "input.n"}),
            {
                "id": "again",
                "dependsOn": ["here"],
                "when": "input.n < 100",
                "workflow": {"name": "itself", "input": {"n": "input.n + 1"}},
            },
        ]
    }
    async with serving(limits=Limits(max_workflow_depth=3)) as (_, stubs):
        await create_workflow(stubs, "itself", recursive)
        run, _ = await run_to_end(stubs, "itself", {"n": 0})
        depths = []
        current = run
        while True:
            children = await children_of(stubs, current.name)
            if not children:
                break
            current = await get_run(stubs, children[0].name)
            depths.append((current.depth, plain(current.input)))
    assert depths == [(1, {"n": 1}), (2, {"n": 2}), (3, {"n": 3})]
    deepest = step_of(current, "again")
    assert deepest.state == R.STEP_STATE_FAILED
    assert deepest.failure.type == "podium.LimitExceeded"
    assert "max_workflow_depth (3)" in deepest.failure.message
    assert current.state == R.RUN_STATE_FAILED
    # Each parent fails with its child's failure, up to the top.
    assert run.state == R.RUN_STATE_FAILED
    assert run.failure.type == "podium.LimitExceeded"
    assert "max_workflow_depth (3)" in run.failure.message


async def test_create_workflow_refuses_an_unknown_child_workflow() -> None:
    async with serving() as (_, stubs):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await create_workflow(stubs, "outer", {"steps": [child_step("sub", "nowhere")]})
        error = raised.value
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(error).reason == "INVALID_WORKFLOW"
        ((field, reason),) = field_violations(error)
        assert field == "spec.steps[0].workflow.name"
        assert "nowhere" in reason
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await create_workflow(
                stubs,
                "outer",
                {"steps": [{"id": "sub", "agent": "echo", "workflow": {"name": "outer"}}]},
            )
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(raised.value)[0][0] == "spec.steps[0].workflow"
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await create_workflow(stubs, "outer", {"steps": [child_step("sub", "")]})
        assert ("spec.steps[0].workflow.name", "a child workflow's name is required") in (
            field_violations(raised.value)
        )


async def test_list_runs_refuses_a_malformed_parent() -> None:
    async with serving() as (_, stubs):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stubs.executions.ListRuns(X.ListRunsRequest(parent_run="nope"))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(raised.value)[0][0] == "parent_run"


async def test_a_child_whose_workflow_was_deleted_fails_the_step() -> None:
    async with serving() as (_, stubs):
        await create_workflow(stubs, "inner", {"steps": [echo_step("say")]})
        await create_workflow(stubs, "outer", {"steps": [child_step("sub", "inner")]})
        from podium.v1 import workflow_service_pb2

        await stubs.workflows.DeleteWorkflow(
            workflow_service_pb2.DeleteWorkflowRequest(name="workflows/inner")
        )
        run = await start_run(stubs, "outer")
        await collect_events(stubs, run.name)
        run = await get_run(stubs, run.name)
    assert run.state == R.RUN_STATE_FAILED
    assert step_of(run, "sub").failure.type == "podium.WorkflowNotFound"


# -- timeouts: the wait for a child is bounded by the step's deadlines ---------------


GATED_INNER = {"steps": [{"id": "gate", "waitForSignal": {"name": "go"}}]}


async def _child_waiting(stubs: Stubs, run: str, *, besides: str = "") -> R.Run:
    """A child of the parent (other than `besides`), once its gate waits."""
    found: list[R.Run] = []

    async def ready() -> bool:
        for child in await children_of(stubs, run):
            view = await get_run(stubs, child.name)
            if child.name != besides and step_of(view, "gate").state == R.STEP_STATE_WAITING:
                found.append(view)
                return True
        return False

    await eventually(ready, what="a child waiting for its signal")
    return found[0]


async def test_a_child_step_past_its_timeout_fails_and_cancels_the_child() -> None:
    clock = ManualClock()
    step = child_step("sub", "inner")
    step["timeout"] = "30s"
    async with serving(clock=clock) as (_, stubs):
        await create_workflow(stubs, "inner", GATED_INNER)
        await create_workflow(stubs, "outer", {"steps": [step]})
        run = await start_run(stubs, "outer")
        child = await _child_waiting(stubs, run.name)
        clock.advance(29)
        await asyncio.sleep(0.05)
        assert (await get_run(stubs, run.name)).state == R.RUN_STATE_RUNNING
        clock.advance(2)
        await collect_events(stubs, run.name)
        run = await get_run(stubs, run.name)
        child = await get_run(stubs, child.name)
    sub = step_of(run, "sub")
    assert run.state == R.RUN_STATE_FAILED
    assert sub.failure.type == "podium.Timeout"
    assert child.name in sub.failure.message and "30s" in sub.failure.message
    assert [a.state for a in sub.attempts] == [R.ATTEMPT_STATE_FAILED]
    assert child.state == R.RUN_STATE_CANCELLED


async def test_a_child_past_its_attempt_timeout_is_cancelled_and_retried() -> None:
    clock = ManualClock()
    step = child_step("sub", "inner")
    step["attemptTimeout"] = "10s"
    step["retry"] = [{"errorEquals": ["podium.Timeout"], "interval": "1s", "maxAttempts": 2}]
    async with serving(clock=clock) as (_, stubs):
        await create_workflow(stubs, "inner", GATED_INNER)
        await create_workflow(stubs, "outer", {"steps": [step]})
        run = await start_run(stubs, "outer")
        first = await _child_waiting(stubs, run.name)
        clock.advance(11)

        async def first_cancelled() -> bool:
            return (await get_run(stubs, first.name)).state == R.RUN_STATE_CANCELLED

        await eventually(first_cancelled, what="the first child cancelled")

        async def second_started() -> bool:
            # The retry's 1 s interval passes however late its timer starts.
            clock.advance(1)
            return len(await children_of(stubs, run.name)) == 2

        await eventually(second_started, what="a second child started by the retry")
        second = await _child_waiting(stubs, run.name, besides=first.name)
        assert second.name != first.name
        await stubs.executions.SignalRun(X.SignalRunRequest(run=second.name, name="go"))
        await collect_events(stubs, run.name)
        run = await get_run(stubs, run.name)
    sub = step_of(run, "sub")
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    assert [a.state for a in sub.attempts] == [
        R.ATTEMPT_STATE_FAILED,
        R.ATTEMPT_STATE_SUCCEEDED,
    ]
    assert sub.attempts[0].failure.type == "podium.Timeout"
