"""Shared fixtures for the integration tests: a real grpc.aio server on
127.0.0.1 (ephemeral port) over a SQLite file in tmp_path, and the generated
stubs on one aio channel. No mocks of Podium's own modules."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2_grpc
from grpc_status import rpc_status

from podium.server.app import PodiumServer, start_server
from podium.v1 import (
    common_pb2,
    control_service_pb2_grpc,
    event_pb2,
    execution_service_pb2,
    execution_service_pb2_grpc,
    progress_service_pb2,
    progress_service_pb2_grpc,
    run_pb2,
    workflow_pb2,
    workflow_service_pb2,
    workflow_service_pb2_grpc,
)

E = event_pb2
R = run_pb2

# Generous ceilings so that a hung stream fails a test instead of the suite.
WATCH_TIMEOUT = 20.0

FINAL_EVENT_TYPES = frozenset(
    {
        E.RUN_EVENT_TYPE_RUN_SUCCEEDED,
        E.RUN_EVENT_TYPE_RUN_FAILED,
        E.RUN_EVENT_TYPE_RUN_CANCELLED,
        E.RUN_EVENT_TYPE_RUN_PARTIALLY_SUCCEEDED,
    }
)


# -- server and stubs ------------------------------------------------------------


@dataclass
class Stubs:
    channel: grpc.aio.Channel
    workflows: workflow_service_pb2_grpc.WorkflowServiceAsyncStub
    executions: execution_service_pb2_grpc.ExecutionServiceAsyncStub
    progress: progress_service_pb2_grpc.ProgressServiceAsyncStub
    control: control_service_pb2_grpc.ControlServiceAsyncStub


def stubs_for(channel: grpc.aio.Channel) -> Stubs:
    return Stubs(
        channel=channel,
        workflows=workflow_service_pb2_grpc.WorkflowServiceStub(channel),
        executions=execution_service_pb2_grpc.ExecutionServiceStub(channel),
        progress=progress_service_pb2_grpc.ProgressServiceStub(channel),
        control=control_service_pb2_grpc.ControlServiceStub(channel),
    )


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "podium.db")


@pytest.fixture
async def server(db_path: str) -> AsyncIterator[PodiumServer]:
    started = await start_server("127.0.0.1:0", db_path)
    try:
        yield started
    finally:
        await started.stop(0.5)


@contextlib.asynccontextmanager
async def serving(db_path: str) -> AsyncIterator[tuple[PodiumServer, Stubs]]:
    """A server on `db_path` and stubs on a channel to it, for tests that stop
    and restart servers themselves. Stopping twice is harmless."""
    started = await start_server("127.0.0.1:0", db_path)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{started.port}") as channel:
            yield started, stubs_for(channel)
    finally:
        await started.stop(0.5)


@pytest.fixture
async def stubs(server: PodiumServer) -> AsyncIterator[Stubs]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield stubs_for(channel)


# -- building requests ---------------------------------------------------------------


def health_stub(stubs: Stubs) -> Any:
    """grpc.health.v1.Health on the stubs' channel (its type stubs know no aio)."""
    return health_pb2_grpc.HealthStub(stubs.channel)


def make_spec(spec: Mapping[str, Any]) -> workflow_pb2.WorkflowSpec:
    """A WorkflowSpec from its proto JSON mapping (the YAML/JSON form)."""
    return json_format.ParseDict(dict(spec), workflow_pb2.WorkflowSpec())


def echo(step_id: str, *depends_on: str, delay_ms: float = 0, **extra: Any) -> dict[str, Any]:
    step: dict[str, Any] = {"id": step_id, "agent": "echo", "dependsOn": list(depends_on)}
    if delay_ms:
        step["config"] = {"delay_ms": delay_ms}
    step.update(extra)
    return step


def struct(data: Mapping[str, Any] | None) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    if data:
        message.update(dict(data))
    return message


async def create_workflow(
    stubs: Stubs, workflow_id: str, spec: Mapping[str, Any]
) -> workflow_pb2.Workflow:
    response = await stubs.workflows.CreateWorkflow(
        workflow_service_pb2.CreateWorkflowRequest(workflow_id=workflow_id, spec=make_spec(spec))
    )
    return response.workflow


async def start_run(
    stubs: Stubs,
    workflow_id: str,
    input: Mapping[str, Any] | None = None,
    **fields: Any,
) -> run_pb2.Run:
    response = await stubs.executions.StartRun(
        execution_service_pb2.StartRunRequest(
            workflow=f"workflows/{workflow_id}", input=struct(input), **fields
        )
    )
    return response.run


async def get_run(stubs: Stubs, name: str) -> run_pb2.Run:
    response = await stubs.executions.GetRun(execution_service_pb2.GetRunRequest(name=name))
    return response.run


async def collect_events(
    stubs: Stubs,
    run: str,
    after_sequence: int = 0,
    *,
    limit: int | None = None,
    timeout: float = WATCH_TIMEOUT,
) -> list[event_pb2.RunEvent]:
    """Every event WatchRun delivers until the stream ends (or `limit` events)."""

    async def read() -> list[event_pb2.RunEvent]:
        events: list[event_pb2.RunEvent] = []
        call = stubs.progress.WatchRun(
            progress_service_pb2.WatchRunRequest(run=run, after_sequence=after_sequence)
        )
        try:
            async for response in call:
                events.extend(response.events)
                if limit is not None and len(events) >= limit:
                    break
        finally:
            call.cancel()
        return events

    return await asyncio.wait_for(read(), timeout)


async def run_to_end(
    stubs: Stubs, workflow_id: str, input: Mapping[str, Any] | None = None, **fields: Any
) -> tuple[run_pb2.Run, list[event_pb2.RunEvent]]:
    """Starts a run, watches it to its final event; returns (GetRun, events)."""
    run = await start_run(stubs, workflow_id, input, **fields)
    events = await collect_events(stubs, run.name)
    return await get_run(stubs, run.name), events


async def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.01) -> None:
    """Polls an async predicate until it is true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


# -- reading events and errors ---------------------------------------------------------


def sequences(events: Sequence[event_pb2.RunEvent]) -> list[int]:
    return [e.sequence for e in events]


def of_type(
    events: Sequence[event_pb2.RunEvent], type_: event_pb2.RunEventType.ValueType
) -> list[event_pb2.RunEvent]:
    return [e for e in events if e.type == type_]


def index_of(
    events: Sequence[event_pb2.RunEvent],
    type_: event_pb2.RunEventType.ValueType,
    step_id: str = "",
) -> int:
    for i, event in enumerate(events):
        if event.type == type_ and event.step_id == step_id:
            return i
    raise AssertionError(f"no event {E.RunEventType.Name(type_)} for step {step_id!r}")


def error_status(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    status = rpc_status.from_call(cast(grpc.Call, error))
    assert status is not None, f"no rich status on {error.code()}: {error.details()}"
    return status


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    for detail in error_status(error).details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError("no ErrorInfo in the status details")


def field_violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    for detail in error_status(error).details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            return [(v.field, v.description) for v in bad.field_violations]
    raise AssertionError("no BadRequest in the status details")


def money_nanos(money: common_pb2.Money) -> int:
    return money.units * 1_000_000_000 + money.nanos


# -- semantics tests: an injectable clock, a server-wide step limit, plain values ------------


@contextlib.asynccontextmanager
async def serving_with(
    db_path: str,
    *,
    clock: Any = None,
    max_running_steps: int | None = None,
    plugins: Any = None,
) -> AsyncIterator[tuple[PodiumServer, Stubs]]:
    """Like `serving`, with the engine's clock (e.g. a ManualClock), server-wide
    step limit and plugin report (podium.plugins.manager.load_plugins, perhaps
    with agents added) chosen by the test."""
    options: dict[str, Any] = {"clock": clock, "plugins": plugins}
    if max_running_steps is not None:
        options["max_running_steps"] = max_running_steps
    started = await start_server("127.0.0.1:0", db_path, **options)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{started.port}") as channel:
            yield started, stubs_for(channel)
    finally:
        await started.stop(0.5)


def plain(message: Any) -> Any:
    """A protobuf Value/Struct (or any message) as plain Python data."""
    return json_format.MessageToDict(message)


def step_of(run: run_pb2.Run, step_id: str) -> run_pb2.StepRun:
    for step in run.steps:
        if step.step_id == step_id:
            return step
    raise AssertionError(f"run {run.name} has no step {step_id!r}")


# -- semantics tests: driving runs on a ManualClock ------------------------------------------


async def eventually(condition: Any, timeout: float = 5.0, what: str = "") -> None:
    """Polls `condition` (a callable returning a bool, or an awaitable of one)
    until it holds, within `timeout` real seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"not met within {timeout}s: {what or condition}")
        await asyncio.sleep(0.005)


async def step_reaches(
    stubs: Stubs,
    run: str,
    step_id: str,
    state: run_pb2.StepState.ValueType,
    *,
    attempts: int | None = None,
    timeout: float = 5.0,
) -> run_pb2.Run:
    """Polls GetRun until the step is in `state` (having made `attempts`
    attempts, if given); returns that GetRun."""
    seen: list[run_pb2.Run] = []

    async def reached() -> bool:
        current = await get_run(stubs, run)
        seen[:] = [current]
        step = step_of(current, step_id)
        return step.state == state and (attempts is None or len(step.attempts) == attempts)

    want = f"{step_id} {run_pb2.StepState.Name(state)} after {attempts} attempts"
    await eventually(reached, timeout, want)
    return seen[0]


# -- governance tests: a server with a policy ------------------------------------------------


@contextlib.asynccontextmanager
async def serving_governed(
    db_path: str, policy: Any = None, *, clock: Any = None
) -> AsyncIterator[tuple[PodiumServer, Stubs]]:
    """Like `serving`, with a governance policy (podium.governance.policy.Policy)
    and the engine's clock (e.g. a ManualClock) chosen by the test."""
    started = await start_server("127.0.0.1:0", db_path, policy=policy, clock=clock)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{started.port}") as channel:
            yield started, stubs_for(channel)
    finally:
        await started.stop(0.5)
