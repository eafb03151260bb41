"""The scheduler: DAG order, maximal parallelism, concurrency limits, failure
propagation, CEL inputs and the run's output."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest
from google.protobuf import json_format

from podium.testing import (
    FOREVER_MS,
    BarrierAgent,
    HoldAgent,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    get_run,
    index_of,
    of_type,
    plugins_with,
    run_to_end,
    sequences,
    serving,
    start_run,
    step_reaches,
)
from podium.v1 import event_pb2, run_pb2

E = event_pb2
R = run_pb2

STEP_ENDED = frozenset(
    {
        E.RUN_EVENT_TYPE_STEP_SUCCEEDED,
        E.RUN_EVENT_TYPE_STEP_FAILED,
        E.RUN_EVENT_TYPE_STEP_CANCELLED,
    }
)


def most_running(events: Sequence[event_pb2.RunEvent]) -> int:
    """The largest number of steps running at once, replaying the events."""
    running: set[str] = set()
    most = 0
    for event in events:
        if event.type == E.RUN_EVENT_TYPE_STEP_STARTED:
            assert event.step_id not in running
            running.add(event.step_id)
            most = max(most, len(running))
        elif event.type in STEP_ENDED and event.step_id in running:
            running.remove(event.step_id)
    assert not running
    return most


def outputs(run: run_pb2.Run) -> dict[str, Any]:
    return {
        s.step_id: json_format.MessageToDict(s)["output"] for s in run.steps if s.HasField("output")
    }


async def test_a_step_starts_while_an_unrelated_slow_branch_runs(db_path: str) -> None:
    # `slow` holds until the other branch is done, however long that takes.
    hold = HoldAgent()
    spec = {
        "steps": [
            {"id": "slow", "agent": "hold"},
            echo_step("a"),
            echo_step("b", "a"),
            echo_step("c", "b"),
            echo_step("end", "slow", "c"),
        ]
    }
    async with serving(db_path, plugins=plugins_with([hold])) as (_, stubs):
        await create_workflow(stubs, "branches", spec)
        started = await start_run(stubs, "branches")
        await step_reaches(stubs, started.name, "c", R.STEP_STATE_SUCCEEDED)
        hold.release()
        events = await collect_events(stubs, started.name)
        run = await get_run(stubs, started.name)
    assert run.state == R.RUN_STATE_SUCCEEDED

    slow_done = index_of(events, E.RUN_EVENT_TYPE_STEP_SUCCEEDED, "slow")
    assert index_of(events, E.RUN_EVENT_TYPE_STEP_SUCCEEDED, "c") < slow_done
    # The scheduler never waits for a whole level: b and c (levels 1, 2) ran
    # while slow (level 0) was still running; end waited for both branches.
    assert index_of(events, E.RUN_EVENT_TYPE_STEP_STARTED, "b") < slow_done
    assert index_of(events, E.RUN_EVENT_TYPE_STEP_STARTED, "end") > slow_done
    c_end = next(s for s in run.steps if s.step_id == "c").end_time.ToNanoseconds()
    slow_end = next(s for s in run.steps if s.step_id == "slow").end_time.ToNanoseconds()
    assert c_end < slow_end  # c finished while slow still ran


def random_dag(seed: int, size: int) -> dict[str, Any]:
    """Roots run the `roots` barrier agent: none ends before every root runs."""
    rng = random.Random(seed)
    steps = []
    ids = [f"s{i:02d}" for i in range(size)]
    for i, step_id in enumerate(ids):
        deps = rng.sample(ids[:i], k=min(i, rng.randint(0, 3)))
        if deps:
            step = echo_step(step_id, *deps, delay_ms=rng.choice([0, 0, 5, 15, 30]))
            step["input"] = {"from": f"steps.{deps[0]}.output"}
        else:
            step = {"id": step_id, "agent": "roots", "dependsOn": []}
        steps.append(step)
    rng.shuffle(steps)  # definition order is irrelevant
    return {"steps": steps}


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_no_step_starts_before_its_dependencies_succeeded(db_path: str, seed: int) -> None:
    spec = random_dag(seed, 40)
    meeting = BarrierAgent(sum(1 for s in spec["steps"] if not s["dependsOn"]), name="roots")
    async with serving(db_path, plugins=plugins_with([meeting])) as (_, stubs):
        await create_workflow(stubs, "random", spec)
        run, events = await run_to_end(stubs, "random", {"seed": seed})
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure

    deps = {s["id"]: s["dependsOn"] for s in spec["steps"]}
    succeeded: set[str] = set()
    started: list[str] = []
    for event in events:
        if event.type == E.RUN_EVENT_TYPE_STEP_STARTED:
            missing = [d for d in deps[event.step_id] if d not in succeeded]
            assert not missing, f"{event.step_id} started before {missing} succeeded"
            started.append(event.step_id)
        elif event.type == E.RUN_EVENT_TYPE_STEP_SUCCEEDED:
            succeeded.add(event.step_id)
    assert sorted(started) == sorted(deps)  # each step ran exactly once
    assert succeeded == set(deps)
    assert sequences(events) == list(range(1, len(events) + 1))
    # Roots have no dependency: they all start before anything else ends.
    roots = {step_id for step_id, d in deps.items() if not d}
    first_end = next(i for i, e in enumerate(events) if e.type in STEP_ENDED)
    assert roots <= {
        e.step_id for e in events[:first_end] if e.type == E.RUN_EVENT_TYPE_STEP_STARTED
    }
    # The input of a step was read from its dependency's output.
    for step in run.steps:
        if deps[step.step_id]:
            assert (
                json_format.MessageToDict(step.input)["from"] == outputs(run)[deps[step.step_id][0]]
            )


def six_parallel(agent: str) -> dict[str, Any]:
    return {"steps": [{"id": f"p{i}", "agent": agent} for i in range(6)]}


# Steps that finish only in batches running together: a limit must let that many run (it is
# used), and no more may start meanwhile (it is respected), whatever the machine's speed.
def together(parties: int) -> BarrierAgent:
    return BarrierAgent(parties, name=f"together_{parties}")


async def test_run_max_concurrency_caps_running_steps(db_path: str) -> None:
    async with serving(db_path, plugins=plugins_with([together(2)])) as (_, stubs):
        await create_workflow(stubs, "six", six_parallel("together_2"))
        run, events = await run_to_end(stubs, "six", max_concurrency=2)
    assert run.state == R.RUN_STATE_SUCCEEDED
    assert run.max_concurrency == 2
    assert most_running(events) == 2


async def test_workflow_max_concurrency_caps_running_steps(db_path: str) -> None:
    plugins = plugins_with([together(3), together(1)])
    async with serving(db_path, plugins=plugins) as (_, stubs):
        await create_workflow(stubs, "six", {**six_parallel("together_3"), "maxConcurrency": 3})
        _, events = await run_to_end(stubs, "six")
        assert most_running(events) == 3
        # A run's own limit overrides the workflow's.
        await create_workflow(stubs, "six-1", {**six_parallel("together_1"), "maxConcurrency": 3})
        _, events = await run_to_end(stubs, "six-1", max_concurrency=1)
        assert most_running(events) == 1


async def test_without_a_limit_independent_steps_all_run_together(db_path: str) -> None:
    async with serving(db_path, plugins=plugins_with([together(6)])) as (_, stubs):
        await create_workflow(stubs, "six", six_parallel("together_6"))
        _, events = await run_to_end(stubs, "six")
    assert most_running(events) == 6


async def test_a_failing_step_fails_the_run(stubs: Stubs) -> None:
    await create_workflow(
        stubs,
        "failing",
        {
            "steps": [
                {
                    "id": "boom",
                    "agent": "flaky",
                    "config": {"fail_attempts": 1, "delay_ms": 50, "error": "Kaboom"},
                },
                # Only the failure can end it: the run ending at all shows it did not wait.
                echo_step("sibling", delay_ms=FOREVER_MS),
                echo_step("after", "boom"),
                echo_step("later", "after"),
                echo_step("waits_for_sibling", "sibling"),
            ]
        },
    )
    run, events = await run_to_end(stubs, "failing")

    assert run.state == R.RUN_STATE_FAILED
    assert run.failure.type == "Kaboom"
    assert "boom" in run.failure.message

    steps = {s.step_id: s for s in run.steps}
    assert steps["boom"].state == R.STEP_STATE_FAILED
    assert steps["boom"].failure.type == "Kaboom"
    assert [(a.number, a.state) for a in steps["boom"].attempts] == [(1, R.ATTEMPT_STATE_FAILED)]
    assert steps["sibling"].state == R.STEP_STATE_CANCELLED
    assert steps["sibling"].attempts[-1].state == R.ATTEMPT_STATE_CANCELLED
    for skipped in ("after", "later", "waits_for_sibling"):
        assert steps[skipped].state == R.STEP_STATE_SKIPPED
        assert "boom" in steps[skipped].reason
        assert list(steps[skipped].attempts) == []
    assert not run.HasField("output")

    final = events[-1]
    assert (final.type, final.run_state) == (E.RUN_EVENT_TYPE_RUN_FAILED, R.RUN_STATE_FAILED)
    assert final.failure.type == "Kaboom"
    assert [e.step_id for e in of_type(events, E.RUN_EVENT_TYPE_STEP_FAILED)] == ["boom"]
    assert {e.step_id for e in of_type(events, E.RUN_EVENT_TYPE_STEP_SKIPPED)} == {
        "after",
        "later",
        "waits_for_sibling",
    }
    assert [e.step_id for e in of_type(events, E.RUN_EVENT_TYPE_STEP_CANCELLED)] == ["sibling"]
    assert {e.step_id for e in of_type(events, E.RUN_EVENT_TYPE_STEP_STARTED)} == {
        "boom",
        "sibling",
    }


async def test_output_mapping(stubs: Stubs) -> None:
    await create_workflow(
        stubs,
        "mapped",
        {
            "steps": [
                echo_step("a", input={"n": "input.n"}),
                echo_step("b", "a", input={"n": "steps.a.output.n * 10"}),
                echo_step("side", input={"tag": "'side'"}),
            ],
            "output": {
                "total": "steps.a.output.n + steps.b.output.n",
                "name": "input.name",
                "tags": "[steps.side.output.tag, 'x']",
            },
        },
    )
    run, events = await run_to_end(stubs, "mapped", {"n": 4, "name": "ada"})
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    expected = {"total": 44, "name": "ada", "tags": ["side", "x"]}
    assert json_format.MessageToDict(run.output) == expected
    assert json_format.MessageToDict(events[-1].output) == expected


async def test_default_output_is_the_final_steps_outputs(stubs: Stubs) -> None:
    await create_workflow(
        stubs,
        "finals",
        {
            "steps": [
                echo_step("root", input={"v": "input.v"}),
                echo_step("left", "root", input={"l": "steps.root.output.v + 1"}),
                echo_step("right", "root", input={"r": "steps.root.output.v + 2"}),
            ]
        },
    )
    run, _ = await run_to_end(stubs, "finals", {"v": 1})
    assert json_format.MessageToDict(run.output) == {"left": {"l": 2}, "right": {"r": 3}}


async def test_output_mapping_that_fails_at_run_time_fails_the_run(stubs: Stubs) -> None:
    await create_workflow(
        stubs, "bad-output", {"steps": [echo_step("a")], "output": {"x": "steps.a.output.missing"}}
    )
    run, events = await run_to_end(stubs, "bad-output")
    assert run.state == R.RUN_STATE_FAILED
    assert run.failure.type == "podium.InvalidOutput"
    assert events[-1].type == E.RUN_EVENT_TYPE_RUN_FAILED
    assert run.steps[0].state == R.STEP_STATE_SUCCEEDED


async def test_cel_inputs_over_input_and_step_outputs(stubs: Stubs) -> None:
    await create_workflow(
        stubs,
        "cel",
        {
            "steps": [
                echo_step(
                    "first",
                    input={
                        "greeting": "'hello ' + input.name",
                        "double": "input.n * 2",
                        "big": "input.n > 2",
                        "items": "input.items.map(i, i + 1)",
                        "nested": "{'k': input.nested.k}",
                    },
                ),
                {
                    "id": "calc",
                    "agent": "transform",
                    "dependsOn": ["first"],
                    "input": {
                        "d": "steps.first.output.double",
                        "g": "steps['first'].output.greeting",
                    },
                    "config": {"output": {"sum": "input.d + 1", "shout": "input.g.upperAscii()"}},
                },
                echo_step(
                    "last",
                    "calc",
                    input={
                        "sum": "steps.calc.output.sum",
                        "size": "size(steps.first.output.items)",
                    },
                ),
            ]
        },
    )
    run, _ = await run_to_end(
        stubs, "cel", {"name": "ada", "n": 3, "items": [1, 2, 3], "nested": {"k": "v"}}
    )
    assert run.state == R.RUN_STATE_SUCCEEDED, run.failure
    results = outputs(run)
    first = {
        "greeting": "hello ada",
        "double": 6,
        "big": True,
        "items": [2, 3, 4],
        "nested": {"k": "v"},
    }
    assert results["first"] == first
    assert json_format.MessageToDict(run.steps[0].input) == first
    assert results["calc"] == {"sum": 7, "shout": "HELLO ADA"}
    assert results["last"] == {"sum": 7, "size": 3}


async def test_an_input_expression_that_fails_at_run_time_fails_the_step(stubs: Stubs) -> None:
    await create_workflow(
        stubs,
        "bad-input",
        {"steps": [echo_step("a", input={"x": "input.missing + 1"}), echo_step("b", "a")]},
    )
    run, _ = await run_to_end(stubs, "bad-input", {"present": 1})
    assert run.state == R.RUN_STATE_FAILED
    steps = {s.step_id: s for s in run.steps}
    assert steps["a"].state == R.STEP_STATE_FAILED
    assert steps["a"].failure.type == "podium.InvalidInput"
    assert steps["b"].state == R.STEP_STATE_SKIPPED


async def test_a_join_whose_dependencies_end_in_one_cascade_starts_once(stubs: Stubs) -> None:
    # `never` is skipped by its condition, which skips `after` (ALL_SUCCEEDED)
    # while `never`'s own end is still being counted: the ALL_DONE join sees
    # both ends in one cascade and must be started exactly once.
    spec = {
        "steps": [
            echo_step("never", when="input.never"),
            echo_step("after", "never"),
            echo_step("join", "never", "after", triggerRule="TRIGGER_RULE_ALL_DONE"),
        ]
    }
    await create_workflow(stubs, "cascade", spec)
    run, events = await run_to_end(stubs, "cascade", {"never": False})
    started = [e for e in events if e.type == E.RUN_EVENT_TYPE_STEP_STARTED]
    assert [e.step_id for e in started] == ["join"]
    assert [s.state for s in run.steps] == [
        R.STEP_STATE_SKIPPED,
        R.STEP_STATE_SKIPPED,
        R.STEP_STATE_SUCCEEDED,
    ]
    assert len(run.steps[2].attempts) == 1
