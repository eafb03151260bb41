"""Request messages built the same way by the sync and the async client."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import struct_pb2

from podium.client.enums import event_type, run_state
from podium.client.names import run_name, workflow_name
from podium.v1 import (
    event_pb2,
    execution_service_pb2,
    progress_service_pb2,
    workflow_service_pb2,
)

__all__ = [
    "cancel_run",
    "delete_run",
    "get_run",
    "get_workflow",
    "list_runs",
    "resolve_approval",
    "start_run",
    "watch_runs",
]


def get_workflow(name_or_id: str, version: int) -> workflow_service_pb2.GetWorkflowRequest:
    return workflow_service_pb2.GetWorkflowRequest(name=workflow_name(name_or_id), version=version)


def start_run(
    workflow: str,
    input: Mapping[str, Any] | None,
    request_id: str | None,
    labels: Mapping[str, str] | None,
    max_concurrency: int,
    workflow_version: int,
) -> execution_service_pb2.StartRunRequest:
    request = execution_service_pb2.StartRunRequest(
        workflow=workflow_name(workflow),
        workflow_version=workflow_version,
        # Chosen once per call, so gRPC-level retries of this very request stay idempotent;
        # callers who retry across process restarts pass their own.
        request_id=request_id or str(uuid.uuid4()),
        labels=dict(labels or {}),
        max_concurrency=max_concurrency,
    )
    if input:
        request.input.CopyFrom(_struct(input))
    return request


def get_run(run: str) -> execution_service_pb2.GetRunRequest:
    return execution_service_pb2.GetRunRequest(name=run_name(run))


def cancel_run(run: str, reason: str) -> execution_service_pb2.CancelRunRequest:
    return execution_service_pb2.CancelRunRequest(name=run_name(run), reason=reason)


def delete_run(run: str) -> execution_service_pb2.DeleteRunRequest:
    return execution_service_pb2.DeleteRunRequest(name=run_name(run))


def resolve_approval(
    run: str, step_id: str, approve: bool, comment: str
) -> execution_service_pb2.ResolveApprovalRequest:
    decision = (
        event_pb2.APPROVAL_DECISION_APPROVE if approve else event_pb2.APPROVAL_DECISION_REJECT
    )
    return execution_service_pb2.ResolveApprovalRequest(
        run=run_name(run), step_id=step_id, decision=decision, comment=comment
    )


def list_runs(
    workflow: str | None,
    states: Iterable[int | str] | None,
    labels: Mapping[str, str] | None,
    page_size: int,
) -> execution_service_pb2.ListRunsRequest:
    return execution_service_pb2.ListRunsRequest(
        page_size=page_size,
        workflow=workflow_name(workflow) if workflow else "",
        states=[run_state(s) for s in states or ()],
        labels=dict(labels or {}),
    )


def watch_runs(
    workflows: Iterable[str],
    run_states: Iterable[int | str],
    event_types: Iterable[int | str],
) -> progress_service_pb2.WatchRunsRequest:
    return progress_service_pb2.WatchRunsRequest(
        workflows=[workflow_name(w) for w in workflows],
        run_states=[run_state(s) for s in run_states],
        event_types=[event_type(t) for t in event_types],
    )


def _struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    try:
        struct.update(dict(values))
    except (ValueError, TypeError) as error:
        # Struct holds JSON values only; say so before the server sees a half-built message.
        raise ValueError(f"input must be JSON-compatible: {error}") from None
    return struct
