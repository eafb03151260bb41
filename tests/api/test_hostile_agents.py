"""Agents, tools and compensations that raise what is not an Exception
(SystemExit, KeyboardInterrupt, GeneratorExit, a CancelledError nobody
asked for): each fails its attempt with the exception's class name, is not
retried, and the server keeps serving. Had one escaped its task, asyncio
would have re-raised it out of this test's own event loop.

And an agent's unexpected exception is logged with its traceback and the
run, step and attempt it failed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2

from podium.plugins.api import Agent, StepContext, Tool
from podium.testing import (
    InProcessServer,
    collect_events,
    create_workflow,
    get_run,
    of_type,
    plugins_with,
    serving,
    start_run,
    step_of,
)
from podium.v1 import event_pb2, run_pb2

R = run_pb2
E = event_pb2


def _generator_exit() -> BaseException:
    return GeneratorExit()


HOSTILE: dict[str, Callable[[], BaseException]] = {
    "SystemExit": lambda: SystemExit(3),
    "KeyboardInterrupt": KeyboardInterrupt,
    "GeneratorExit": _generator_exit,
    "CancelledError": asyncio.CancelledError,
}


class Raises:
    description = "raises what it was made with"
    version = "1"

    def __init__(self, name: str, make: Callable[[], BaseException]) -> None:
        self.name = name
        self.make = make

    async def run(self, ctx: StepContext) -> Any:
        raise self.make()


class CallsTool:
    name = "calls_tool"
    description = "calls the tool named by config `tool`"
    version = "1"

    async def run(self, ctx: StepContext) -> Any:
        return await ctx.call_tool(str(ctx.config["tool"]), {})


class ChecksByExiting:
    name = "checks_by_exiting"
    description = "its check_config calls sys.exit()"
    version = "1"

    def check_config(self, config: Mapping[str, Any], catalog: Any) -> list[tuple[str, str]]:
        raise SystemExit(4)

    async def run(self, ctx: StepContext) -> Any:
        return {}


async def _exit_tool(arguments: Mapping[str, Any]) -> Any:
    raise SystemExit("a tool that exits")


AGENTS: list[Agent] = [
    *(Raises(f"raises_{name}", make) for name, make in HOSTILE.items()),
    Raises("raises_KeyError", lambda: KeyError("missing")),
    CallsTool(),
    ChecksByExiting(),
]
TOOLS = [Tool("exit_tool", "calls sys.exit", {"type": "object"}, _exit_tool)]
RETRY_ALL = [{"errorEquals": ["podium.All"], "interval": "0.001s", "maxAttempts": 3}]


@pytest.fixture
async def hostile(db_path: str) -> Any:
    async with serving(db_path, plugins=plugins_with(AGENTS, tools=TOOLS)) as running:
        yield running


async def _serving(running: InProcessServer) -> None:
    answer = await running.stubs.health.Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def _run(running: InProcessServer, spec: dict[str, Any]) -> tuple[run_pb2.Run, list[Any]]:
    stubs = running.stubs
    await create_workflow(stubs, "w", spec)
    run = await start_run(stubs, "w")
    events = await collect_events(stubs, run.name)
    return await get_run(stubs, run.name), events


@pytest.mark.parametrize("name", list(HOSTILE))
@pytest.mark.parametrize("attempt_timeout", [None, "60s"], ids=["in-step-task", "own-task"])
async def test_an_agent_raising_a_base_exception_fails_without_retry(
    hostile: InProcessServer, name: str, attempt_timeout: str | None
) -> None:
    step: dict[str, Any] = {"id": "a", "agent": f"raises_{name}", "retry": RETRY_ALL}
    if attempt_timeout is not None:  # the agent then runs in a task of its own
        step["attemptTimeout"] = attempt_timeout
    run, _ = await _run(hostile, {"steps": [step, {"id": "b", "agent": "echo"}]})

    assert run.state == R.RUN_STATE_FAILED, R.RunState.Name(run.state)
    a = step_of(run, "a")
    assert a.state == R.STEP_STATE_FAILED, R.StepState.Name(a.state)
    assert a.failure.type == name
    assert not a.failure.retryable
    assert [t.state for t in a.attempts] == [R.ATTEMPT_STATE_FAILED]
    assert a.attempts[0].failure.type == name
    await _serving(hostile)


async def test_a_base_exception_follows_the_steps_failure_policy(
    hostile: InProcessServer,
) -> None:
    spec = {
        "steps": [
            {"id": "a", "agent": "raises_SystemExit", "onFailure": "FAILURE_POLICY_CONTINUE"},
            {"id": "b", "agent": "echo"},
            {"id": "c", "agent": "raises_KeyboardInterrupt", "forEach": {"items": "[1, 2, 3]"}},
        ]
    }
    run, _ = await _run(hostile, spec)

    assert run.state == R.RUN_STATE_FAILED, R.RunState.Name(run.state)
    assert step_of(run, "a").state == R.STEP_STATE_FAILED
    assert step_of(run, "b").state == R.STEP_STATE_SUCCEEDED
    c = step_of(run, "c")
    assert c.state == R.STEP_STATE_FAILED
    assert c.failure.type == "podium.TooManyFailedItems"
    assert "last: KeyboardInterrupt" in c.failure.message, c.failure.message
    await _serving(hostile)


async def test_a_tool_raising_system_exit_fails_the_attempt(hostile: InProcessServer) -> None:
    step = {
        "id": "a",
        "agent": "calls_tool",
        "tools": ["exit_tool"],
        "config": {"tool": "exit_tool"},
    }
    run, events = await _run(hostile, {"steps": [step]})

    a = step_of(run, "a")
    assert a.state == R.STEP_STATE_FAILED
    assert a.failure.type == "SystemExit"
    assert "a tool that exits" in a.failure.message
    [result] = of_type(events, E.RUN_EVENT_TYPE_TOOL_RESULT)
    assert result.failure.type == "SystemExit"
    await _serving(hostile)


async def test_a_compensation_raising_system_exit_is_reported(hostile: InProcessServer) -> None:
    spec = {
        "steps": [
            {"id": "a", "agent": "echo", "compensate": {"agent": "raises_SystemExit"}},
            {"id": "b", "agent": "raises_KeyError", "dependsOn": ["a"]},
        ]
    }
    run, events = await _run(hostile, spec)

    assert run.state == R.RUN_STATE_FAILED
    [failed] = of_type(events, E.RUN_EVENT_TYPE_COMPENSATION_FAILED)
    assert failed.step_id == "a" and failed.failure.type == "SystemExit"
    await _serving(hostile)


async def test_an_unexpected_exception_is_logged_with_its_traceback_and_ids(
    hostile: InProcessServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="podium.engine"):
        run, _ = await _run(hostile, {"steps": [{"id": "a", "agent": "raises_KeyError"}]})

    assert step_of(run, "a").failure.type == "KeyError"
    run_id = run.name.split("/")[-1]
    [record] = [r for r in caplog.records if r.name == "podium.engine" and run_id in r.message]
    assert "'a'" in record.message and "attempt 1" in record.message
    assert record.exc_info is not None and isinstance(record.exc_info[1], KeyError)
    assert "raise self.make()" in caplog.text  # the traceback, down to the agent's line


async def test_a_config_check_raising_system_exit_rejects_the_workflow(
    hostile: InProcessServer,
) -> None:
    spec = {"steps": [{"id": "a", "agent": "checks_by_exiting"}]}
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await create_workflow(hostile.stubs, "w", spec)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "could not check its config: SystemExit(4)" in (raised.value.details() or "")
    await _serving(hostile)
