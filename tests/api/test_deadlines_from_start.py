"""A deadline counts from its start on the server's clock, whatever happens
to the clock before its timer could have run: on a ManualClock advanced past
an attempt's timeout the moment its agent is entered, the attempt still ends
at start + timeout (the attempt timeout, the step's timeout; the wait for a
child workflow, whose child's agent advances it).

The attempt's timer used to be armed inside a task of its own, which ran only
after the agent's first step: the advance was missed and the deadline moved
back by it, so those steps were never cut off. Each test checks, before it
waits for the step's end, that no timer was armed after the advance (a bound
that follows from the code: a deadline that was counted leaves none). The
same slip in the other waits that run_until bounds (approvals, signals,
callbacks, a child, a worker's slot or heartbeat) needs an advance in the
same loop turn as the call, which no test reaches through the API:
tests/unit/core/test_clock.py covers run_until itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from podium.core.clock import ManualClock
from podium.plugins.api import StepContext
from podium.testing import (
    Stubs,
    collect_events,
    create_workflow,
    eventually,
    get_run,
    plugins_with,
    serving,
    start_run,
    step_of,
)
from podium.v1 import execution_service_pb2, run_pb2

R = run_pb2
X = execution_service_pb2

START = 1_700_000_000.0


class AdvancingAgent:
    """Moves the server's clock forward by `config.seconds` as soon as it is
    entered, then runs until cancelled: only a deadline ends its step."""

    name = "advance"
    description = "Advances the test's ManualClock when entered (tests)."
    version = "1"

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.entered = 0

    async def run(self, ctx: StepContext) -> Any:
        self.entered += 1
        self.clock.advance(float(ctx.config["seconds"]))
        await asyncio.Event().wait()


@pytest.fixture
async def advancing(db_path: str) -> AsyncIterator[tuple[ManualClock, AdvancingAgent, Stubs]]:
    clock = ManualClock(start=START)
    agent = AdvancingAgent(clock)
    async with serving(db_path, clock=clock, plugins=plugins_with([agent])) as (_, stubs):
        yield clock, agent, stubs


def advance_step(step_id: str, seconds: float, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "agent": "advance", "config": {"seconds": seconds}, **fields}


def at(stamp: Any) -> float:
    return float(stamp.seconds + stamp.nanos / 1e9)


async def cut_off(stubs: Stubs, run: str, step_id: str) -> R.Run:
    """The run once its step ended. A deadline pushed back by the advance
    would never fire (nothing advances the clock again): the step would
    run on and `eventually` fail. (Not "a timer armed while it runs": a
    child's cancellation arms timers of its own on the way to the end.)"""

    async def ended() -> bool:
        view = await get_run(stubs, run)
        return step_of(view, step_id).state not in (R.STEP_STATE_RUNNING, R.STEP_STATE_WAITING)

    await eventually(ended, what=f"step {step_id!r} cut off by its deadline")
    await collect_events(stubs, run)
    return await get_run(stubs, run)


async def test_an_attempt_timeout_counts_an_advance_made_as_its_agent_is_entered(
    advancing: tuple[ManualClock, AdvancingAgent, Stubs],
) -> None:
    _, agent, stubs = advancing
    await create_workflow(stubs, "a", {"steps": [advance_step("s", 1.5, attemptTimeout="1s")]})
    run = await start_run(stubs, "a")
    done = await cut_off(stubs, run.name, "s")
    assert agent.entered == 1
    s = step_of(done, "s")
    assert (done.state, s.state) == (R.RUN_STATE_FAILED, R.STEP_STATE_FAILED)
    assert s.failure.type == "podium.Timeout"
    assert "attempt timed out after 1s" in s.failure.message
    (attempt,) = s.attempts
    assert attempt.state == R.ATTEMPT_STATE_FAILED
    assert at(attempt.start_time) == pytest.approx(START)
    # Cut off at the first moment the clock was past start + 1 s.
    assert at(attempt.end_time) == pytest.approx(START + 1.5)


async def test_a_step_timeout_counts_an_advance_made_as_its_agent_is_entered(
    advancing: tuple[ManualClock, AdvancingAgent, Stubs],
) -> None:
    _, agent, stubs = advancing
    await create_workflow(stubs, "s", {"steps": [advance_step("s", 3, timeout="2s")]})
    run = await start_run(stubs, "s")
    done = await cut_off(stubs, run.name, "s")
    assert agent.entered == 1
    s = step_of(done, "s")
    assert s.state == R.STEP_STATE_FAILED
    assert s.failure.type == "podium.Timeout"
    assert "step timed out after 2s" in s.failure.message
    assert at(s.end_time) == pytest.approx(START + 3)


@pytest.mark.parametrize("bound", ["timeout", "attemptTimeout"])
async def test_the_wait_for_a_child_counts_an_advance_made_as_the_childs_agent_is_entered(
    advancing: tuple[ManualClock, AdvancingAgent, Stubs], bound: str
) -> None:
    # The child's agent runs only after its own attempt's commit (a hand-off
    # from the store's writer thread), never seen in the loop turn between the
    # parent's call and its old timer task: this one passed before the fix
    # too. It keeps the parent's deadline on its start while the clock moves
    # inside the child.
    _, agent, stubs = advancing
    await create_workflow(stubs, "inner", {"steps": [advance_step("work", 5)]})
    parent_step = {"id": "sub", "workflow": {"name": "inner"}, bound: "4s"}
    await create_workflow(stubs, "outer", {"steps": [parent_step]})
    run = await start_run(stubs, "outer")
    done = await cut_off(stubs, run.name, "sub")
    assert agent.entered == 1
    sub = step_of(done, "sub")
    assert (done.state, sub.state) == (R.RUN_STATE_FAILED, R.STEP_STATE_FAILED)
    assert sub.failure.type == "podium.Timeout", sub.failure.message
    assert at(sub.end_time) == pytest.approx(START + 5)
    children = await stubs.executions.ListRuns(X.ListRunsRequest(parent_run=run.name))
    (child,) = children.runs
    assert (await get_run(stubs, child.name)).state == R.RUN_STATE_CANCELLED
