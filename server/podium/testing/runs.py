"""Driving workflows and runs through the API, one call per helper.

Each helper is the request a client would send, with the boilerplate
(resource names, Structs, reading a stream to its end) done once. Waiting
helpers poll for a state rather than sleep: see podium.testing.waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from podium.testing.stubs import Stubs
from podium.testing.values import struct
from podium.testing.waiting import HANG_TIMEOUT, eventually
from podium.testing.workflows import make_spec
from podium.v1 import (
    event_pb2,
    execution_service_pb2,
    progress_service_pb2,
    run_pb2,
    workflow_pb2,
    workflow_service_pb2,
)

__all__ = [
    "collect_events",
    "create_workflow",
    "get_run",
    "resolve_approval",
    "run_to_end",
    "start_run",
    "step_of",
    "step_reaches",
]


async def create_workflow(
    stubs: Stubs, workflow_id: str, spec: Mapping[str, Any]
) -> workflow_pb2.Workflow:
    """Stores a new version of `workflow_id` (spec in the JSON mapping)."""
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
    """Starts a run of the latest version; `fields` are further
    StartRunRequest fields (request_id, priority, max_cost, ...)."""
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
    timeout: float = HANG_TIMEOUT,
    metadata: tuple[tuple[str, str], ...] = (),
) -> list[event_pb2.RunEvent]:
    """Every event WatchRun delivers after `after_sequence` until the stream
    ends with the run's final event, or the first `limit` of them (at least;
    a batch is never cut). `metadata` goes with the call (x-podium-tenant)."""

    async def read() -> list[event_pb2.RunEvent]:
        events: list[event_pb2.RunEvent] = []
        call = stubs.progress.WatchRun(
            progress_service_pb2.WatchRunRequest(run=run, after_sequence=after_sequence),
            metadata=metadata,
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
    """Starts a run and watches it to its final event; returns what GetRun
    says then, and every event."""
    run = await start_run(stubs, workflow_id, input, **fields)
    events = await collect_events(stubs, run.name)
    return await get_run(stubs, run.name), events


def step_of(run: run_pb2.Run, step_id: str) -> run_pb2.StepRun:
    for step in run.steps:
        if step.step_id == step_id:
            return step
    raise AssertionError(f"run {run.name} has no step {step_id!r}")


async def step_reaches(
    stubs: Stubs,
    run: str,
    step_id: str,
    state: run_pb2.StepState.ValueType,
    *,
    attempts: int | None = None,
    timeout: float = HANG_TIMEOUT,
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
    await eventually(reached, timeout=timeout, what=want)
    return seen[0]


async def resolve_approval(
    stubs: Stubs,
    run: str,
    step_id: str,
    decision: event_pb2.ApprovalDecision.ValueType = event_pb2.APPROVAL_DECISION_APPROVE,
    comment: str = "",
) -> run_pb2.Run:
    """Approves (or, with APPROVAL_DECISION_REJECT, rejects) a step waiting
    for approval; returns the run as ResolveApproval answers it."""
    response = await stubs.executions.ResolveApproval(
        execution_service_pb2.ResolveApprovalRequest(
            run=run, step_id=step_id, decision=decision, comment=comment
        )
    )
    return response.run
