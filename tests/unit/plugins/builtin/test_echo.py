"""The builtin echo agent: its input back, after a delay that cancellation
interrupts; its config checked."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from podium.plugins import Registry
from podium.plugins.api import (
    AgentError,
    config_problems,
)
from podium.plugins.builtin import (
    EchoAgent,
)
from podium.testing import FakeStepContext


async def test_echo_returns_its_input_unchanged() -> None:
    ctx = FakeStepContext({"a": [1, 2, {"b": None}], "c": "d"})
    assert await EchoAgent().run(ctx) is ctx.input
    assert ctx.input == {"a": [1, 2, {"b": None}], "c": "d"}


async def test_echo_delay_is_cancellable() -> None:
    delay_s = 60
    task = asyncio.create_task(
        EchoAgent().run(FakeStepContext(input=1, config={"delay_ms": delay_s * 1000}))
    )
    await asyncio.sleep(0.02)
    assert not task.done()
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # A delay that ignored the cancellation would have run its full minute.
    assert time.monotonic() - started < delay_s


async def test_echo_waits_its_delay() -> None:
    started = time.monotonic()
    assert await EchoAgent().run(FakeStepContext(input="x", config={"delay_ms": 50})) == "x"
    assert time.monotonic() - started >= 0.045


@pytest.mark.parametrize("delay", [-1, "10", True, [1]])
def test_echo_rejects_a_bad_delay(delay: Any, catalog: Registry) -> None:
    problems = config_problems(EchoAgent(), {"delay_ms": delay}, catalog)
    assert [field for field, _ in problems] == ["delay_ms"]


def test_echo_accepts_a_good_config_and_rejects_unknown_settings(catalog: Registry) -> None:
    assert config_problems(EchoAgent(), {"delay_ms": 5.0}, catalog) == []
    assert [f for f, _ in config_problems(EchoAgent(), {"delay": 5}, catalog)] == ["delay"]


async def test_echo_refuses_to_run_with_an_invalid_config() -> None:
    with pytest.raises(AgentError) as error:
        await EchoAgent().run(FakeStepContext(config={"delay_ms": -5}))
    assert error.value.code == "podium.InvalidConfig"
    assert not error.value.retryable
