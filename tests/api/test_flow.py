"""Control flow between steps: on_failure CONTINUE and partial success,
trigger rules, `when` conditions and conditional routing, `steps.<id>.state`
in CEL, and what GetRun reports about every step."""

from __future__ import annotations

from typing import Any

import pytest

from podium.testing import (
    Stubs,
    create_workflow,
    echo_step,
    index_of,
    of_type,
    plain,
    run_to_end,
    sequences,
    step_of,
)
from podium.v1 import event_pb2, run_pb2

E = event_pb2
R = run_pb2

CONTINUE = "FAILURE_POLICY_CONTINUE"


def failing(step_id: str, *depends_on: str, **fields: Any) -> dict[str, Any]:
    """A flaky step that fails its only attempt (no retry), the run going on."""
    return {
        "id": step_id,
        "agent": "flaky",
        "dependsOn": list(depends_on),
        "config": {"fail_attempts": 1},
        "onFailure": CONTINUE,
        **fields,
    }


def started(events: list[event_pb2.RunEvent]) -> set[str]:
    return {e.step_id for e in of_type(events, E.RUN_EVENT_TYPE_STEP_STARTED)}


def states(run: run_pb2.Run) -> dict[str, str]:
    return {s.step_id: R.StepState.Name(s.state).removeprefix("STEP_STATE_") for s in run.steps}


async def test_continue_keeps_the_run_going_and_ends_partially_succeeded(stubs: Stubs) -> None:
    spec = {
        "steps": [
            failing("bad"),
            echo_step("dependent", "bad"),
            echo_step("grandchild", "dependent"),
            echo_step("independent", input={"n": "input.n"}),
            echo_step(
                "after_independent", "independent", input={"n": "steps.independent.output.n"}
            ),
        ]
    }
    await create_workflow(stubs, "partial", spec)
    run, events = await run_to_end(stubs, "partial", {"n": 7})

    assert run.state == R.RUN_STATE_PARTIALLY_SUCCEEDED
    assert states(run) == {
        "bad": "FAILED",
        "dependent": "SKIPPED",
        "grandchild": "SKIPPED",
        "independent": "SUCCEEDED",
        "after_independent": "SUCCEEDED",
    }
    assert step_of(run, "dependent").reason == "dependency 'bad' failed"
    assert step_of(run, "grandchild").reason == "dependency 'dependent' skipped"
    assert started(events) == {"bad", "independent", "after_independent"}

    final = events[-1]
    assert final.type == E.RUN_EVENT_TYPE_RUN_PARTIALLY_SUCCEEDED
    assert final.run_state == R.RUN_STATE_PARTIALLY_SUCCEEDED
    assert len([e for e in events if e.run_state == R.RUN_STATE_PARTIALLY_SUCCEEDED]) == 1
    assert sequences(events) == list(range(1, len(events) + 1))
    # The output holds the final steps that succeeded; the skipped one is absent.
    assert plain(run.output) == {"after_independent": {"n": 7}}
    assert plain(final.output) == plain(run.output)
    skipped = of_type(events, E.RUN_EVENT_TYPE_STEP_SKIPPED)
    assert [(e.step_id, e.message) for e in skipped] == [
        ("dependent", "dependency 'bad' failed"),
        ("grandchild", "dependency 'dependent' skipped"),
    ]


async def test_all_done_runs_after_a_failed_dependency(stubs: Stubs) -> None:
    spec = {
        "steps": [
            failing("bad"),
            echo_step("good"),
            echo_step(
                "cleanup",
                "bad",
                "good",
                triggerRule="TRIGGER_RULE_ALL_DONE",
                input={"bad": "steps.bad.state", "good": "steps.good.state"},
            ),
        ]
    }
    await create_workflow(stubs, "all-done", spec)
    run, events = await run_to_end(stubs, "all-done")
    assert run.state == R.RUN_STATE_PARTIALLY_SUCCEEDED
    assert step_of(run, "cleanup").state == R.STEP_STATE_SUCCEEDED
    assert plain(step_of(run, "cleanup").output) == {"bad": "FAILED", "good": "SUCCEEDED"}
    started_at = index_of(events, E.RUN_EVENT_TYPE_STEP_STARTED, "cleanup")
    assert index_of(events, E.RUN_EVENT_TYPE_STEP_FAILED, "bad") < started_at
    assert index_of(events, E.RUN_EVENT_TYPE_STEP_SUCCEEDED, "good") < started_at


async def test_all_done_also_runs_after_a_skipped_dependency(stubs: Stubs) -> None:
    spec = {
        "steps": [
            echo_step("never", when="false"),
            echo_step("last", "never", triggerRule="TRIGGER_RULE_ALL_DONE"),
        ]
    }
    await create_workflow(stubs, "all-done-skip", spec)
    run, _ = await run_to_end(stubs, "all-done-skip")
    assert run.state == R.RUN_STATE_SUCCEEDED
    assert states(run) == {"never": "SKIPPED", "last": "SUCCEEDED"}


async def test_any_succeeded_joins_a_succeeded_and_a_skipped_branch(stubs: Stubs) -> None:
    spec = {
        "steps": [
            echo_step("taken"),
            echo_step("not_taken", when="1 > 2"),
            echo_step(
                "join",
                "taken",
                "not_taken",
                triggerRule="TRIGGER_RULE_ANY_SUCCEEDED",
                input={"states": "[steps.taken.state, steps.not_taken.state]"},
            ),
        ]
    }
    await create_workflow(stubs, "any-one", spec)
    run, events = await run_to_end(stubs, "any-one")
    assert run.state == R.RUN_STATE_SUCCEEDED
    assert states(run) == {"taken": "SUCCEEDED", "not_taken": "SKIPPED", "join": "SUCCEEDED"}
    assert plain(step_of(run, "join").output) == {"states": ["SUCCEEDED", "SKIPPED"]}
    # The join waited for both dependencies to end.
    join = index_of(events, E.RUN_EVENT_TYPE_STEP_STARTED, "join")
    assert index_of(events, E.RUN_EVENT_TYPE_STEP_SKIPPED, "not_taken") < join
    assert index_of(events, E.RUN_EVENT_TYPE_STEP_SUCCEEDED, "taken") < join


async def test_any_succeeded_is_skipped_when_nothing_succeeded(stubs: Stubs) -> None:
    spec = {
        "steps": [
            failing("bad"),
            echo_step("off", when="false"),
            echo_step("join", "bad", "off", triggerRule="TRIGGER_RULE_ANY_SUCCEEDED"),
            echo_step("after", "join"),
        ]
    }
    await create_workflow(stubs, "any-none", spec)
    run, events = await run_to_end(stubs, "any-none")
    assert run.state == R.RUN_STATE_PARTIALLY_SUCCEEDED
    assert states(run) == {"bad": "FAILED", "off": "SKIPPED", "join": "SKIPPED", "after": "SKIPPED"}
    assert step_of(run, "join").reason == "no dependency succeeded"
    assert step_of(run, "after").reason == "dependency 'join' skipped"
    assert "join" not in started(events)


async def test_when_false_skips_the_step_and_its_dependents(stubs: Stubs) -> None:
    condition = "input.go == true"
    spec = {
        "steps": [
            echo_step("gate", when=condition),
            echo_step("child", "gate"),
            echo_step("grandchild", "child"),
            echo_step("other"),
        ]
    }
    await create_workflow(stubs, "when-false", spec)
    run, events = await run_to_end(stubs, "when-false", {"go": False})
    assert run.state == R.RUN_STATE_SUCCEEDED
    assert states(run) == {
        "gate": "SKIPPED",
        "child": "SKIPPED",
        "grandchild": "SKIPPED",
        "other": "SUCCEEDED",
    }
    gate = step_of(run, "gate")
    assert condition in gate.reason
    assert not gate.attempts
    assert not gate.HasField("output")
    assert step_of(run, "child").reason == "dependency 'gate' skipped"
    assert started(events) == {"other"}
    (skip,) = [e for e in of_type(events, E.RUN_EVENT_TYPE_STEP_SKIPPED) if e.step_id == "gate"]
    assert condition in skip.message
    assert skip.step_state == R.STEP_STATE_SKIPPED

    again, _ = await run_to_end(stubs, "when-false", {"go": True})
    assert set(states(again).values()) == {"SUCCEEDED"}


async def test_when_reads_an_ancestor_output(stubs: Stubs) -> None:
    spec = {
        "steps": [
            echo_step("probe", input={"score": "input.score"}),
            echo_step("high", "probe", when="steps.probe.output.score >= 5"),
        ]
    }
    await create_workflow(stubs, "when-output", spec)
    low, _ = await run_to_end(stubs, "when-output", {"score": 3})
    high, _ = await run_to_end(stubs, "when-output", {"score": 9})
    assert step_of(low, "high").state == R.STEP_STATE_SKIPPED
    assert step_of(high, "high").state == R.STEP_STATE_SUCCEEDED


async def test_a_join_reads_each_dependency_through_its_own_inputs(stubs: Stubs) -> None:
    # Each input expression is handed only the steps it reads (engine/validation.py
    # input_refs): keys reading one step, two steps, none, and `input`, side by side.
    leaves = [echo_step(f"l{i}", input={"v": str(i + 1)}) for i in range(4)]
    join = echo_step(
        "join",
        *(f"l{i}" for i in range(4)),
        input={
            "first": "steps.l0.output.v",
            "pair": "steps.l1.output.v + steps['l2'].output.v",
            "state": "steps.l3.state",
            "run": "input.x",
            "constant": "7",
        },
    )
    await create_workflow(stubs, "join", {"steps": [*leaves, join]})
    run, _ = await run_to_end(stubs, "join", {"x": "from the run"})
    assert run.state == R.RUN_STATE_SUCCEEDED
    assert plain(step_of(run, "join").output) == {
        "first": 1,
        "pair": 5,
        "state": "SUCCEEDED",
        "run": "from the run",
        "constant": 7,
    }


ROUTING = {
    "steps": [
        echo_step("classify", input={"kind": "input.kind"}),
        echo_step(
            "route_a", "classify", when="steps.classify.output.kind == 'a'", input={"r": "'a'"}
        ),
        echo_step(
            "route_b", "classify", when="steps.classify.output.kind != 'a'", input={"r": "'b'"}
        ),
        echo_step(
            "join",
            "route_a",
            "route_b",
            triggerRule="TRIGGER_RULE_ANY_SUCCEEDED",
            input={
                "a": "steps.route_a.state",
                "b": "steps.route_b.state",
                "via": "steps.route_a.state == 'SUCCEEDED' ? 'a' : 'b'",
            },
        ),
    ]
}


@pytest.mark.parametrize(("kind", "taken", "other"), [("a", "a", "b"), ("z", "b", "a")])
async def test_conditional_routing_runs_only_the_matching_branch(
    stubs: Stubs, kind: str, taken: str, other: str
) -> None:
    await create_workflow(stubs, "routing", ROUTING)
    run, events = await run_to_end(stubs, "routing", {"kind": kind})
    assert run.state == R.RUN_STATE_SUCCEEDED
    assert started(events) == {"classify", f"route_{taken}", "join"}
    assert step_of(run, f"route_{other}").state == R.STEP_STATE_SKIPPED
    assert plain(step_of(run, "join").output) == {
        taken: "SUCCEEDED",
        other: "SKIPPED",
        "via": taken,
    }
    assert plain(run.output) == {"join": plain(step_of(run, "join").output)}


async def test_get_run_reports_every_outcome_with_its_reason(stubs: Stubs) -> None:
    spec = {
        "steps": [
            echo_step("ok", input={"v": "1"}),
            failing("broken", config={"fail_attempts": 1, "message": "it broke"}),
            echo_step("cond", when="input.enabled"),
            echo_step("needs_broken", "broken"),
        ]
    }
    await create_workflow(stubs, "outcomes", spec)
    run, events = await run_to_end(stubs, "outcomes", {"enabled": False})
    assert run.state == R.RUN_STATE_PARTIALLY_SUCCEEDED
    assert [s.step_id for s in run.steps] == ["ok", "broken", "cond", "needs_broken"]

    ok = step_of(run, "ok")
    assert (ok.state, ok.reason, plain(ok.output)) == (R.STEP_STATE_SUCCEEDED, "", {"v": 1})
    assert not ok.HasField("failure")

    broken = step_of(run, "broken")
    assert broken.state == R.STEP_STATE_FAILED
    assert (broken.failure.type, broken.failure.message) == ("FlakyError", "it broke")
    assert broken.reason == "it broke"
    assert [a.state for a in broken.attempts] == [R.ATTEMPT_STATE_FAILED]
    assert broken.HasField("end_time")

    assert step_of(run, "cond").state == R.STEP_STATE_SKIPPED
    assert "input.enabled" in step_of(run, "cond").reason
    assert step_of(run, "needs_broken").reason == "dependency 'broken' failed"

    (failed_event,) = of_type(events, E.RUN_EVENT_TYPE_STEP_FAILED)
    assert failed_event.step_state == R.STEP_STATE_FAILED
    assert failed_event.run_state == R.RUN_STATE_RUNNING  # the run goes on
    assert failed_event.failure.message == "it broke"
