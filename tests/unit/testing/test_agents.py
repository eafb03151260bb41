"""The test agents of podium.testing.agents and plugins_with(): a HoldAgent
step finishes only once released, BarrierAgent steps only together; both
register like a plugin's agents."""

from __future__ import annotations

import asyncio

import pytest

from podium.plugins.api import Agent
from podium.testing import BarrierAgent, FakeStepContext, HoldAgent, eventually, plugins_with


async def test_a_held_step_runs_until_released() -> None:
    hold = HoldAgent()
    first = asyncio.ensure_future(hold.run(FakeStepContext({"n": 1}, step_id="first")))
    second = asyncio.ensure_future(hold.run(FakeStepContext({"n": 2}, step_id="second")))
    await eventually(lambda: hold.held == ["first", "second"], what="both held")
    hold.release("second")
    assert await second == {"n": 2}
    assert not first.done() and hold.held == ["first"]
    hold.release()  # every step, now and later
    assert await first == {"n": 1}
    assert await hold.run(FakeStepContext(step_id="later")) == {}
    assert hold.held == []


async def test_a_step_released_before_it_runs_does_not_hold() -> None:
    hold = HoldAgent()
    hold.release("early")
    assert await hold.run(FakeStepContext({"x": 1}, step_id="early")) == {"x": 1}


async def test_a_held_step_is_cancellable() -> None:
    hold = HoldAgent()
    task = asyncio.ensure_future(hold.run(FakeStepContext(step_id="s")))
    await eventually(lambda: hold.held == ["s"], what="held")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert hold.held == []


async def test_barrier_steps_finish_only_together() -> None:
    barrier = BarrierAgent(2)
    first = asyncio.ensure_future(barrier.run(FakeStepContext({"i": 1})))
    await asyncio.sleep(0)
    assert not first.done()
    assert await barrier.run(FakeStepContext({"i": 2})) == {"i": 2}
    assert await first == {"i": 1}


def test_they_register_as_a_plugin_would() -> None:
    hold, barrier = HoldAgent("held"), BarrierAgent(3)
    assert isinstance(hold, Agent) and isinstance(barrier, Agent)
    registry = plugins_with([hold, barrier]).registry
    assert registry.agent("held") is hold and registry.agent("barrier") is barrier
    assert {"echo", "llm"} <= set(registry.agent_names)
