"""Fan-out (for_each) and loops, end to end through a real server: item order,
`item`/`index` in scope, concurrency caps, failure tolerance, per-item
attempts and events, a 10,000-item fan-out, loop iterations and their cap."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import grpc
import pytest

from podium.plugins.api import StepContext
from podium.plugins.manager import PluginReport, load_plugins
from podium.testing import (
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    error_info,
    field_violations,
    get_run,
    of_type,
    plain,
    run_to_end,
    sequences,
    serving,
    start_run,
    step_of,
)
from podium.v1 import event_pb2, run_pb2

E = event_pb2
R = run_pb2

ITEM_ENDS = (E.RUN_EVENT_TYPE_ITEM_SUCCEEDED, E.RUN_EVENT_TYPE_ITEM_FAILED)


def plan_then_each(**each: Any) -> dict[str, Any]:
    """`plan` echoes the run's `items`; `each` fans out over them."""
    step: dict[str, Any] = {
        "id": "each",
        "agent": "echo",
        "dependsOn": ["plan"],
        "forEach": {"items": "steps.plan.output.items"},
        "input": {"value": "item", "index": "index"},
    }
    for key, value in each.items():
        if key == "forEach":
            step["forEach"].update(value)
        else:
            step[key] = value
    return {"steps": [echo_step("plan", input={"items": "input.items"}), step]}


def peak_running(events: Sequence[event_pb2.RunEvent], step_id: str = "each") -> int:
    running = peak = 0
    for event in events:
        if event.step_id != step_id:
            continue
        if event.type == E.RUN_EVENT_TYPE_ITEM_STARTED:
            running += 1
            peak = max(peak, running)
        elif event.type in ITEM_ENDS:
            running -= 1
    assert running == 0
    return peak


class SleepyAgent:
    """A test agent: sleeps its input's `ms`, then returns its input (the
    builtin agents' delays are per step, this one's per item or iteration)."""

    name = "sleepy"
    description = "Sleeps input.ms milliseconds, then returns its input."
    version = "1"

    async def run(self, ctx: StepContext) -> Any:
        await asyncio.sleep(float(ctx.input["ms"]) / 1000)
        return ctx.input


class ReverseOrderAgent:
    """A test agent whose items finish last first: item `index` returns only
    once item `index + 1` has (of `input.count`), whatever the timing."""

    name = "reverse_order"
    description = "Returns its input after the next item returned."
    version = "1"

    def __init__(self) -> None:
        self._done: dict[int, asyncio.Event] = {}

    def _event(self, index: int) -> asyncio.Event:
        return self._done.setdefault(index, asyncio.Event())

    async def run(self, ctx: StepContext) -> Any:
        index = int(ctx.input["index"])
        if index + 1 < int(ctx.input["count"]):
            await self._event(index + 1).wait()
        self._event(index).set()
        return ctx.input


class TogetherAgent:
    """A test agent that returns only once `parties` items run at the same
    time: each batch of items must all be in flight together to finish."""

    name = "together"
    description = "Returns its input once `parties` items are running."
    version = "1"

    def __init__(self, parties: int) -> None:
        self._barrier = asyncio.Barrier(parties)

    async def run(self, ctx: StepContext) -> Any:
        await self._barrier.wait()
        return ctx.input


def with_agent(agent: Any) -> PluginReport:
    """The builtin plugin plus a test agent."""
    plugins = load_plugins(include_entry_points=False)
    plugins.registry.add_agent(agent, plugin="tests")
    return plugins


# -- fan-out -------------------------------------------------------------------------------


async def test_items_finishing_out_of_order_keep_their_place(db_path: str) -> None:
    spec = plan_then_each()
    spec["steps"][1].update(
        agent="reverse_order",
        input={"value": "item", "index": "index", "count": "size(steps.plan.output.items)"},
    )
    items = ["a", "b", "c", "d", "e"]
    async with serving(db_path, plugins=with_agent(ReverseOrderAgent())) as (_, stubs):
        await create_workflow(stubs, "fan-order", spec)
        run, events = await run_to_end(stubs, "fan-order", {"items": items})
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    finished = [e.item for e in of_type(events, E.RUN_EVENT_TYPE_ITEM_SUCCEEDED)]
    assert finished == [4, 3, 2, 1, 0]
    assert plain(step_of(run, "each").output) == [
        {"value": item, "index": i, "count": len(items)} for i, item in enumerate(items)
    ]


async def test_fan_out_output_is_the_item_outputs_in_item_order(stubs: Stubs) -> None:
    await create_workflow(stubs, "fan", plan_then_each(forEach={"maxConcurrency": 4}))
    items = ["a", {"k": 1}, 3, [4, 5], None, True]
    run, events = await run_to_end(stubs, "fan", {"items": items})
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    each = step_of(run, "each")
    assert each.state == R.STEP_STATE_SUCCEEDED
    expected = [{"value": item, "index": i} for i, item in enumerate(items)]
    assert plain(each.output) == expected
    assert plain(run.output) == {"each": expected}
    assert (each.items_total, each.items_succeeded, each.items_failed) == (6, 6, 0)
    assert sorted(e.item for e in of_type(events, E.RUN_EVENT_TYPE_ITEM_STARTED)) == list(range(6))
    succeeded = of_type(events, E.RUN_EVENT_TYPE_ITEM_SUCCEEDED)
    assert sorted(e.item for e in succeeded) == list(range(6))
    assert all(plain(e.output) == expected[e.item] for e in succeeded)
    # One attempt per item, each tagged with its item; events not about an item carry -1.
    assert sorted(a.item for a in each.attempts) == list(range(6))
    assert all(a.state == R.ATTEMPT_STATE_SUCCEEDED and a.number == 1 for a in each.attempts)
    assert [a.item for a in step_of(run, "plan").attempts] == [-1]
    assert {e.item for e in events if e.type in (E.RUN_EVENT_TYPE_STEP_STARTED,)} == {-1}
    assert sequences(events) == list(range(1, len(events) + 1))


async def test_an_empty_list_succeeds_with_an_empty_output(stubs: Stubs) -> None:
    await create_workflow(stubs, "fan-empty", plan_then_each())
    run, events = await run_to_end(stubs, "fan-empty", {"items": []})
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    each = step_of(run, "each")
    assert plain(each.output) == []
    assert (each.items_total, len(each.attempts)) == (0, 0)
    assert not of_type(events, E.RUN_EVENT_TYPE_ITEM_STARTED)


async def test_items_that_are_not_a_list_fail_the_step(stubs: Stubs) -> None:
    await create_workflow(stubs, "fan-bad", plan_then_each())
    run, _ = await run_to_end(stubs, "fan-bad", {"items": "not a list"})
    assert run.state == R.RUN_STATE_FAILED
    each = step_of(run, "each")
    assert each.state == R.STEP_STATE_FAILED
    assert each.failure.type == "podium.InvalidInput"
    assert "not a list" in each.failure.message


@pytest.mark.parametrize("limit", [1, 3])
async def test_max_concurrency_caps_items_in_flight(db_path: str, limit: int) -> None:
    # Items finish only in batches of `limit` running together: the cap must
    # let that many run (used), and no more may start meanwhile (respected).
    spec = plan_then_each(forEach={"maxConcurrency": limit}, agent="together")
    async with serving(db_path, plugins=with_agent(TogetherAgent(limit))) as (_, stubs):
        await create_workflow(stubs, "fan-cap", spec)
        run, events = await run_to_end(stubs, "fan-cap", {"items": list(range(3 * limit))})
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    assert peak_running(events) == limit


async def test_without_a_cap_items_run_together(db_path: str) -> None:
    # Twenty items that finish only once all twenty run at the same time.
    spec = plan_then_each(agent="together")
    async with serving(db_path, plugins=with_agent(TogetherAgent(20))) as (_, stubs):
        await create_workflow(stubs, "fan-wide", spec)
        run, events = await run_to_end(stubs, "fan-wide", {"items": list(range(20))})
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    assert peak_running(events) == 20


def dividing(**for_each: Any) -> dict[str, Any]:
    """Items {"n", "d"}: an item with d == 0 fails (CEL division by zero)."""
    return {
        "steps": [
            echo_step("plan", input={"items": "input.items"}),
            {
                "id": "each",
                "agent": "transform",
                "dependsOn": ["plan"],
                "forEach": {"items": "steps.plan.output.items", **for_each},
                "input": {"n": "item.n", "d": "item.d"},
                "config": {"output": "input.n / input.d"},
            },
        ]
    }


def items_failing(total: int, failing: Sequence[int]) -> list[dict[str, int]]:
    return [{"n": 10 * (i + 1), "d": 0 if i in failing else 10} for i in range(total)]


@pytest.mark.parametrize(
    "tolerance",
    [{"toleratedFailureCount": 2}, {"toleratedFailurePercent": 40}],
    ids=["count", "percent"],
)
async def test_failures_within_tolerance_leave_null_outputs(
    stubs: Stubs, tolerance: dict[str, Any]
) -> None:
    await create_workflow(stubs, "fan-tolerant", dividing(maxConcurrency=1, **tolerance))
    run, events = await run_to_end(stubs, "fan-tolerant", {"items": items_failing(5, [1, 3])})
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    each = step_of(run, "each")
    assert each.state == R.STEP_STATE_SUCCEEDED
    assert plain(each.output) == [1, None, 3, None, 5]
    assert (each.items_total, each.items_succeeded, each.items_failed) == (5, 3, 2)
    failed = of_type(events, E.RUN_EVENT_TYPE_ITEM_FAILED)
    assert [e.item for e in failed] == [1, 3]
    assert all(e.failure.type == "podium.InvalidInput" for e in failed)
    assert "divide by zero" in failed[0].message
    attempts = {a.item: a for a in each.attempts}
    assert attempts[1].state == R.ATTEMPT_STATE_FAILED
    assert attempts[1].failure.type == "podium.InvalidInput"
    assert attempts[0].state == R.ATTEMPT_STATE_SUCCEEDED


@pytest.mark.parametrize(
    "tolerance",
    [{"toleratedFailureCount": 1}, {"toleratedFailurePercent": 20}, {}],
    ids=["count", "percent", "none"],
)
async def test_failures_beyond_tolerance_fail_the_step(
    stubs: Stubs, tolerance: dict[str, Any]
) -> None:
    await create_workflow(stubs, "fan-intolerant", dividing(maxConcurrency=1, **tolerance))
    run, events = await run_to_end(stubs, "fan-intolerant", {"items": items_failing(5, [1, 3])})
    assert run.state == R.RUN_STATE_FAILED
    each = step_of(run, "each")
    assert each.state == R.STEP_STATE_FAILED
    assert each.failure.type == "podium.TooManyFailedItems"
    assert not each.failure.retryable
    assert run.failure.type == "podium.TooManyFailedItems"
    assert not each.HasField("output")
    tolerated = 0 if not tolerance else 1
    assert each.items_failed == tolerated + 1
    # Sequential (max_concurrency 1): the step stops at the first failure beyond tolerance.
    last_started = max(e.item for e in of_type(events, E.RUN_EVENT_TYPE_ITEM_STARTED))
    assert last_started == (3 if tolerance else 1)
    assert events[-1].type == E.RUN_EVENT_TYPE_RUN_FAILED


async def test_percent_tolerance_rounds_down(stubs: Stubs) -> None:
    # 30% of 5 items is 1.5: one failure is tolerated, two are not.
    await create_workflow(stubs, "fan-round", dividing(toleratedFailurePercent=30))
    ok, _ = await run_to_end(stubs, "fan-round", {"items": items_failing(5, [0])})
    assert ok.state == R.RUN_STATE_SUCCEEDED, ok.failure
    bad, _ = await run_to_end(stubs, "fan-round", {"items": items_failing(5, [0, 4])})
    assert step_of(bad, "each").failure.type == "podium.TooManyFailedItems"


async def test_on_failure_continue_after_too_many_failed_items(stubs: Stubs) -> None:
    spec = dividing()
    spec["steps"][1]["onFailure"] = "FAILURE_POLICY_CONTINUE"
    await create_workflow(stubs, "fan-continue", spec)
    run, _ = await run_to_end(stubs, "fan-continue", {"items": items_failing(3, [2])})
    assert run.state == R.RUN_STATE_PARTIALLY_SUCCEEDED
    assert step_of(run, "each").failure.type == "podium.TooManyFailedItems"


async def test_each_item_has_its_own_attempts_and_retries(stubs: Stubs) -> None:
    spec = {
        "steps": [
            echo_step("plan", input={"items": "input.items"}),
            {
                "id": "each",
                "agent": "flaky",
                "dependsOn": ["plan"],
                "forEach": {"items": "steps.plan.output.items", "maxConcurrency": 2},
                "input": {"value": "item"},
                "config": {"fail_attempts": 1},
                "retry": [{"errorEquals": ["FlakyError"], "interval": "0.001s", "maxAttempts": 2}],
            },
        ]
    }
    await create_workflow(stubs, "fan-retry", spec)
    run, events = await run_to_end(stubs, "fan-retry", {"items": ["x", "y", "z"]})
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    each = step_of(run, "each")
    assert plain(each.output) == [{"value": v} for v in "xyz"]
    by_item: dict[int, list[tuple[int, int]]] = {}
    for attempt in each.attempts:
        by_item.setdefault(attempt.item, []).append((attempt.number, attempt.state))
    assert by_item == {
        i: [(1, R.ATTEMPT_STATE_FAILED), (2, R.ATTEMPT_STATE_SUCCEEDED)] for i in range(3)
    }
    started = of_type(events, E.RUN_EVENT_TYPE_ITEM_STARTED)
    assert sorted((e.item, e.attempt) for e in started) == [
        (i, n) for i in range(3) for n in (1, 2)
    ]
    retrying = of_type(events, E.RUN_EVENT_TYPE_STEP_RETRYING)
    assert sorted(e.item for e in retrying) == [0, 1, 2]
    assert all(e.step_id == "each" and e.failure.type == "FlakyError" for e in retrying)
    assert sorted(e.item for e in of_type(events, E.RUN_EVENT_TYPE_ITEM_SUCCEEDED)) == [0, 1, 2]
    assert (each.items_succeeded, each.items_failed) == (3, 0)


async def test_ten_thousand_items_in_order(stubs: Stubs) -> None:
    total = 10_000
    await create_workflow(stubs, "fan-10k", plan_then_each(forEach={"maxConcurrency": 100}))
    started = time.perf_counter()
    run, events = await run_to_end(stubs, "fan-10k", {"items": list(range(total))})
    elapsed = time.perf_counter() - started  # reported, not asserted: `make bench` W6 times it
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    output = plain(step_of(run, "each").output)
    assert output == [{"value": i, "index": i} for i in range(total)]
    each = step_of(run, "each")
    assert (each.items_total, each.items_succeeded, len(each.attempts)) == (total, total, total)
    assert len(of_type(events, E.RUN_EVENT_TYPE_ITEM_SUCCEEDED)) == total
    assert peak_running(events) <= 100
    assert sequences(events) == list(range(1, len(events) + 1))
    print(f"\n10,000-item fan-out: {elapsed:.2f} s ({elapsed / total * 1000:.3f} ms/item)")


# -- loops ---------------------------------------------------------------------------------


def counting_loop(max_iterations: int, until: str = "output.n >= 3") -> dict[str, Any]:
    return {
        "steps": [
            {
                "id": "count",
                "agent": "transform",
                "input": {"n": "previous == null ? 1 : previous.n + 1", "i": "iteration"},
                "config": {"output": {"n": "input.n", "iteration": "input.i"}},
                "loop": {"until": until, "maxIterations": max_iterations},
            }
        ]
    }


async def test_loop_runs_until_its_condition_holds(stubs: Stubs) -> None:
    await create_workflow(stubs, "loop", counting_loop(10))
    run, events = await run_to_end(stubs, "loop")
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    count = step_of(run, "count")
    assert plain(count.output) == {"n": 3, "iteration": 2}
    assert count.iterations == 3
    assert [(a.item, a.number, a.state) for a in count.attempts] == [
        (i, 1, R.ATTEMPT_STATE_SUCCEEDED) for i in range(3)
    ]
    succeeded = of_type(events, E.RUN_EVENT_TYPE_ITEM_SUCCEEDED)
    assert [e.item for e in succeeded] == [0, 1, 2]
    assert [plain(e.output)["n"] for e in succeeded] == [1, 2, 3]
    assert [e.item for e in of_type(events, E.RUN_EVENT_TYPE_ITEM_STARTED)] == [0, 1, 2]
    assert len(of_type(events, E.RUN_EVENT_TYPE_STEP_SUCCEEDED)) == 1


async def test_a_loop_whose_condition_holds_at_once_runs_once(stubs: Stubs) -> None:
    await create_workflow(stubs, "loop-once", counting_loop(10, until="true"))
    run, _ = await run_to_end(stubs, "loop-once")
    count = step_of(run, "count")
    assert (count.iterations, plain(count.output)) == (1, {"n": 1, "iteration": 0})


async def test_max_iterations_caps_a_loop(stubs: Stubs) -> None:
    await create_workflow(stubs, "loop-capped", counting_loop(4, until="output.n >= 100"))
    run, events = await run_to_end(stubs, "loop-capped")
    count = step_of(run, "count")
    assert count.iterations == 4
    assert [e.item for e in of_type(events, E.RUN_EVENT_TYPE_ITEM_SUCCEEDED)] == [0, 1, 2, 3]
    # The cap ends the loop with the last iteration's output (the step succeeds).
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    assert plain(count.output) == {"n": 4, "iteration": 3}


async def test_a_failing_iteration_fails_the_loop(stubs: Stubs) -> None:
    spec = counting_loop(10)
    spec["steps"][0]["config"] = {"output": {"n": "input.n", "x": "1 / (input.n - 2)"}}
    await create_workflow(stubs, "loop-fail", spec)
    run, events = await run_to_end(stubs, "loop-fail")
    assert run.state == R.RUN_STATE_FAILED
    count = step_of(run, "count")
    assert count.failure.type == "podium.InvalidInput"
    assert [e.item for e in of_type(events, E.RUN_EVENT_TYPE_ITEM_SUCCEEDED)] == [0]
    assert [(a.item, a.state) for a in count.attempts] == [
        (0, R.ATTEMPT_STATE_SUCCEEDED),
        (1, R.ATTEMPT_STATE_FAILED),
    ]


async def test_a_loop_resumes_after_a_restart_where_it_was(db_path: str) -> None:
    plugins = with_agent(SleepyAgent())
    spec = {
        "steps": [
            {
                "id": "count",
                "agent": "sleepy",
                "input": {"ms": "150", "n": "previous == null ? 1 : previous.n + 1"},
                "loop": {"until": "output.n >= 5", "maxIterations": 10},
            }
        ]
    }
    async with serving(db_path, plugins=plugins) as (server, stubs):
        await create_workflow(stubs, "loop-durable", spec)
        run = await start_run(stubs, "loop-durable")
        before: list[event_pb2.RunEvent] = []
        while len(of_type(before, E.RUN_EVENT_TYPE_ITEM_SUCCEEDED)) < 2:
            after = before[-1].sequence if before else 0
            before += await collect_events(stubs, run.name, after, limit=1)
        await server.stop(0.5)
    async with serving(db_path, plugins=plugins) as (_, stubs):
        rest = await collect_events(stubs, run.name, before[-1].sequence)
        final = await get_run(stubs, run.name)
    assert final.state == R.RUN_STATE_SUCCEEDED, final.failure
    count = step_of(final, "count")
    assert plain(count.output) == {"ms": 150, "n": 5}
    assert count.iterations == 5
    events = before + rest
    assert sequences(events) == list(range(1, len(events) + 1))
    # Finished iterations were not run again; the one in flight ran again.
    assert [e.item for e in of_type(events, E.RUN_EVENT_TYPE_ITEM_SUCCEEDED)] == [0, 1, 2, 3, 4]
    assert [plain(e.output)["n"] for e in of_type(events, E.RUN_EVENT_TYPE_ITEM_SUCCEEDED)] == [
        1,
        2,
        3,
        4,
        5,
    ]
    by_item = [(a.item, a.state) for a in count.attempts]
    assert by_item[:2] == [(0, R.ATTEMPT_STATE_SUCCEEDED), (1, R.ATTEMPT_STATE_SUCCEEDED)]
    assert by_item[-1] == (4, R.ATTEMPT_STATE_SUCCEEDED)


@pytest.mark.parametrize("max_iterations", [0, -1, 1001])
async def test_max_iterations_out_of_range_is_invalid(stubs: Stubs, max_iterations: int) -> None:
    spec = {"steps": [echo_step("first"), counting_loop(max_iterations)["steps"][0]]}
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await create_workflow(stubs, "loop-bad", spec)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(raised.value).reason == "INVALID_WORKFLOW"
    fields = [field for field, _ in field_violations(raised.value)]
    assert fields == ["spec.steps[1].loop.max_iterations"]


async def test_the_server_limit_itself_is_accepted(stubs: Stubs) -> None:
    await create_workflow(stubs, "loop-limit", counting_loop(1000, until="output.n >= 2"))
    run, _ = await run_to_end(stubs, "loop-limit")
    assert run.state == R.RUN_STATE_SUCCEEDED
    assert (await get_run(stubs, run.name)).steps[0].iterations == 2
