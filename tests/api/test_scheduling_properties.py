"""Properties of the scheduler over random DAGs with random failures, retries,
failure policies, trigger rules and conditions, checked on the event log of
real runs: dependency order, exactly one final state per step, gap-free
sequences ending with the run's final event, and a consistent final state
(the exact outcome of every step, when no step can fail the run)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podium.core.clock import ManualClock
from podium.testing import (
    Stubs,
    collect_events,
    create_workflow,
    get_run,
    serving,
    start_run,
)
from podium.v1 import event_pb2, run_pb2

E = event_pb2
R = run_pb2

RULES = ("ALL_SUCCEEDED", "ALL_DONE", "ANY_SUCCEEDED")
FINAL_RUN_EVENTS = frozenset(
    {
        E.RUN_EVENT_TYPE_RUN_SUCCEEDED,
        E.RUN_EVENT_TYPE_RUN_FAILED,
        E.RUN_EVENT_TYPE_RUN_CANCELLED,
        E.RUN_EVENT_TYPE_RUN_PARTIALLY_SUCCEEDED,
    }
)
_ids = itertools.count()


@dataclass(frozen=True)
class Node:
    deps: tuple[int, ...]
    fails: bool  # the first attempt fails
    retry: bool  # a retrier gives it a second attempt
    policy: str  # FAIL or CONTINUE
    rule: str
    runs_when: bool  # its `when` condition holds
    delay_ms: int

    @property
    def fails_for_good(self) -> bool:
        return self.fails and not self.retry


@st.composite
def dags(draw: st.DrawFn) -> list[Node]:
    size = draw(st.integers(min_value=1, max_value=15))
    nodes: list[Node] = []
    for i in range(size):
        deps = draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else set()
        nodes.append(
            Node(
                deps=tuple(sorted(deps)),
                fails=draw(st.booleans()),
                retry=draw(st.booleans()),
                policy=draw(st.sampled_from(["FAIL", "CONTINUE", "CONTINUE"])),
                rule=draw(st.sampled_from(RULES)),
                runs_when=draw(st.sampled_from([True, True, True, False])),
                delay_ms=draw(st.sampled_from([0, 0, 1, 3])),
            )
        )
    return nodes


def name(i: int) -> str:
    return f"s{i:02d}"


def to_spec(nodes: Sequence[Node]) -> dict[str, Any]:
    steps = []
    for i, node in enumerate(nodes):
        step: dict[str, Any] = {
            "id": name(i),
            "agent": "flaky",
            "dependsOn": [name(d) for d in node.deps],
            "config": {"fail_attempts": 1 if node.fails else 0, "delay_ms": node.delay_ms},
            "onFailure": f"FAILURE_POLICY_{node.policy}",
            "triggerRule": f"TRIGGER_RULE_{node.rule}",
        }
        if node.retry:
            step["retry"] = [{"errorEquals": ["podium.All"], "interval": "1s", "maxAttempts": 2}]
        if not node.runs_when:
            step["when"] = "input.never"
        steps.append(step)
    return {"steps": steps}


def model(nodes: Sequence[Node]) -> list[str]:
    """Each step's final state when no FAIL-policy step fails."""
    states: list[str] = []
    for node in nodes:
        deps = [states[d] for d in node.deps]
        succeeded = deps.count("SUCCEEDED")
        blocked = {
            "ALL_SUCCEEDED": succeeded < len(deps),
            "ALL_DONE": False,
            "ANY_SUCCEEDED": bool(deps) and not succeeded,
        }[node.rule]
        if blocked or not node.runs_when:
            states.append("SKIPPED")
        else:
            states.append("FAILED" if node.fails_for_good else "SUCCEEDED")
    return states


def final_state(event: event_pb2.RunEvent) -> str | None:
    """The step's final state if `event` ends the step, else None."""
    if event.type == E.RUN_EVENT_TYPE_STEP_FAILED and event.step_state != R.STEP_STATE_FAILED:
        return None  # a failed attempt that will be retried
    if event.type in (
        E.RUN_EVENT_TYPE_STEP_SUCCEEDED,
        E.RUN_EVENT_TYPE_STEP_FAILED,
        E.RUN_EVENT_TYPE_STEP_SKIPPED,
        E.RUN_EVENT_TYPE_STEP_CANCELLED,
    ):
        return R.StepState.Name(event.step_state).removeprefix("STEP_STATE_")
    return None


def check_log(
    nodes: Sequence[Node], run: run_pb2.Run, events: Sequence[event_pb2.RunEvent]
) -> None:
    # (c) gap-free sequences, one final run event, and it is the last.
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert [e.type in FINAL_RUN_EVENTS for e in events].count(True) == 1
    assert events[-1].type in FINAL_RUN_EVENTS
    assert events[-1].run_state == run.state
    assert events[-1].sequence == run.last_sequence

    ended: dict[str, str] = {}
    for event in events:
        if not event.step_id:
            continue
        step = event.step_id
        index = int(step[1:])
        # (b) nothing happens to a step after its final event.
        assert step not in ended, f"{step}: {E.RunEventType.Name(event.type)} after it ended"
        if event.type == E.RUN_EVENT_TYPE_STEP_STARTED:
            # (a) every dependency has ended; under ALL_SUCCEEDED, succeeded.
            node = nodes[index]
            deps = [ended.get(name(d)) for d in node.deps]
            assert None not in deps, f"{step} started before {node.deps} ended: {deps}"
            if node.rule == "ALL_SUCCEEDED":
                assert set(deps) <= {"SUCCEEDED"}, f"{step} started after {deps}"
            if node.rule == "ANY_SUCCEEDED" and deps:
                assert "SUCCEEDED" in deps, f"{step} started after {deps}"
            assert node.runs_when
        state = final_state(event)
        if state is not None:
            ended[step] = state

    # (b) every step ended exactly once, as GetRun reports it.
    assert ended == {
        s.step_id: R.StepState.Name(s.state).removeprefix("STEP_STATE_") for s in run.steps
    }
    assert len(ended) == len(nodes)

    # (d) the run's final state follows from its failed steps.
    failed = [i for i, node in enumerate(nodes) if ended[name(i)] == "FAILED"]
    hard = [i for i in failed if nodes[i].policy == "FAIL"]
    for i in failed:
        assert nodes[i].fails_for_good
    if hard:
        assert run.state == R.RUN_STATE_FAILED
    elif failed:
        assert run.state == R.RUN_STATE_PARTIALLY_SUCCEEDED
    else:
        assert run.state == R.RUN_STATE_SUCCEEDED

    expected = model(nodes)
    if not any(state == "FAILED" and nodes[i].policy == "FAIL" for i, state in enumerate(expected)):
        # Nothing can fail the run: every step's outcome is determined.
        assert [ended[name(i)] for i in range(len(nodes))] == expected
        for i, node in enumerate(nodes):
            attempts = len(run.steps[i].attempts)
            if expected[i] == "SKIPPED":
                assert attempts == 0
            else:
                assert attempts == (2 if node.fails and node.retry else 1)
    else:
        assert run.state == R.RUN_STATE_FAILED
        assert run.failure.type == "FlakyError"


@contextlib.asynccontextmanager
async def ticking(clock: ManualClock) -> AsyncIterator[None]:
    """Moves the clock on whenever something sleeps on it (a retry's wait)."""

    async def tick() -> None:
        while True:
            if clock.sleepers:
                clock.advance(1)
            await asyncio.sleep(0.001)

    task = asyncio.create_task(tick())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def manual(db_path: str) -> AsyncIterator[tuple[ManualClock, Stubs]]:
    clock = ManualClock()
    async with serving(db_path, clock=clock) as (_, stubs):
        yield clock, stubs


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(nodes=dags())
async def test_random_dags_keep_the_scheduling_invariants(
    manual: tuple[ManualClock, Stubs], nodes: list[Node]
) -> None:
    clock, stubs = manual
    workflow_id = f"dag-{next(_ids)}"
    await create_workflow(stubs, workflow_id, to_spec(nodes))
    async with ticking(clock):
        started = await start_run(stubs, workflow_id, {"never": False})
        events = await collect_events(stubs, started.name)
    run = await get_run(stubs, started.name)
    check_log(nodes, run, events)


def test_the_model_itself() -> None:
    """The reference model on a hand-checked DAG, so that the property is not vacuous."""
    ok = Node((), False, False, "FAIL", "ALL_SUCCEEDED", True, 0)
    soft = Node((), True, False, "CONTINUE", "ALL_SUCCEEDED", True, 0)
    nodes = [
        ok,
        soft,
        Node((0, 1), False, False, "FAIL", "ALL_SUCCEEDED", True, 0),
        Node((0, 1), False, False, "FAIL", "ALL_DONE", True, 0),
        Node((1, 2), False, False, "FAIL", "ANY_SUCCEEDED", True, 0),
        Node((0,), True, True, "FAIL", "ALL_SUCCEEDED", False, 0),
    ]
    assert model(nodes) == ["SUCCEEDED", "FAILED", "SKIPPED", "SUCCEEDED", "SKIPPED", "SKIPPED"]
