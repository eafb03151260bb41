"""Request messages built the same way by the sync and the async client."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from google.protobuf import json_format, struct_pb2

from podium.client.enums import event_type, run_state
from podium.client.governance import alert_kind, budget_period, quota_dimension, scope_message
from podium.client.money import from_decimal
from podium.client.names import run_name, workflow_name
from podium.client.schedules import schedule_name
from podium.v1 import (
    common_pb2,
    control_service_pb2,
    event_pb2,
    execution_service_pb2,
    progress_service_pb2,
    workflow_pb2,
    workflow_service_pb2,
)

__all__ = [
    "amount",
    "cancel_run",
    "complete_callback",
    "delete_run",
    "get_run",
    "get_spend",
    "get_workflow",
    "list_runs",
    "resolve_approval",
    "signal_run",
    "start_run",
    "update_budget",
    "update_quota",
    "watch_runs",
]

T = TypeVar("T")
V = TypeVar("V")


def get_workflow(name_or_id: str, version: int) -> workflow_service_pb2.GetWorkflowRequest:
    return workflow_service_pb2.GetWorkflowRequest(name=workflow_name(name_or_id), version=version)


def start_run(
    workflow: str,
    input: Mapping[str, Any] | None,
    request_id: str | None,
    labels: Mapping[str, str] | None,
    max_concurrency: int,
    workflow_version: int,
    max_cost: Decimal | str | int | None = None,
    priority: int = 0,
    notify_url: str = "",
    notify_secret: str = "",
) -> execution_service_pb2.StartRunRequest:
    request = execution_service_pb2.StartRunRequest(
        workflow=workflow_name(workflow),
        workflow_version=workflow_version,
        # Chosen once per call, so gRPC-level retries of this very request stay idempotent;
        # callers who retry across process restarts pass their own.
        request_id=request_id or str(uuid.uuid4()),
        labels=dict(labels or {}),
        max_concurrency=max_concurrency,
        priority=priority,
    )
    if input:
        request.input.CopyFrom(_struct(input))
    if max_cost is not None:
        request.max_cost.CopyFrom(amount(max_cost, "max_cost"))
    if notify_url:
        request.notification.CopyFrom(
            workflow_pb2.Notification(url=notify_url, secret=notify_secret)
        )
    return request


def get_run(run: str) -> execution_service_pb2.GetRunRequest:
    return execution_service_pb2.GetRunRequest(name=run_name(run))


def cancel_run(run: str, reason: str) -> execution_service_pb2.CancelRunRequest:
    return execution_service_pb2.CancelRunRequest(name=run_name(run), reason=reason)


def pause_run(run: str, reason: str) -> execution_service_pb2.PauseRunRequest:
    return execution_service_pb2.PauseRunRequest(name=run_name(run), reason=reason)


def resume_run(run: str) -> execution_service_pb2.ResumeRunRequest:
    return execution_service_pb2.ResumeRunRequest(name=run_name(run))


def rerun_run(
    run: str, from_steps: Iterable[str], request_id: str = ""
) -> execution_service_pb2.RerunRunRequest:
    return execution_service_pb2.RerunRunRequest(
        name=run_name(run), from_steps=list(from_steps), request_id=request_id
    )


def rerun_runs(
    workflow: str | None,
    states: Iterable[int | str] | None,
    labels: Mapping[str, str] | None,
    from_steps: Iterable[str],
    max_runs: int,
    request_id: str = "",
) -> execution_service_pb2.RerunRunsRequest:
    return execution_service_pb2.RerunRunsRequest(
        workflow=workflow_name(workflow) if workflow else "",
        states=[run_state(s) for s in states or ()],
        labels=dict(labels or {}),
        from_steps=list(from_steps),
        max_runs=max_runs,
        request_id=request_id,
    )


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


def json_value(value: Any) -> struct_pb2.Value:
    """Any JSON value as a google.protobuf.Value."""
    message = struct_pb2.Value()
    json_format.ParseDict(value, message)
    return message


def signal_run(
    run: str, name: str, payload: Any, request_id: str | None
) -> execution_service_pb2.SignalRunRequest:
    return execution_service_pb2.SignalRunRequest(
        run=run_name(run),
        name=name,
        payload=json_value(payload),
        # As for StartRun: chosen once per call, so a retried call is one signal.
        request_id=request_id or str(uuid.uuid4()),
    )


def complete_callback(token: str, payload: Any) -> execution_service_pb2.CompleteCallbackRequest:
    return execution_service_pb2.CompleteCallbackRequest(token=token, payload=json_value(payload))


def list_runs(
    workflow: str | None,
    states: Iterable[int | str] | None,
    labels: Mapping[str, str] | None,
    page_size: int,
    parent: str | None = None,
    schedule: str | None = None,
) -> execution_service_pb2.ListRunsRequest:
    return execution_service_pb2.ListRunsRequest(
        page_size=page_size,
        workflow=workflow_name(workflow) if workflow else "",
        states=[run_state(s) for s in states or ()],
        labels=dict(labels or {}),
        parent_run=run_name(parent) if parent else "",
        schedule=schedule_name(schedule) if schedule else "",
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


def update_quota(
    name: str,
    scope: str,
    dimension: int | str,
    limit: float,
    burst: float,
    window: float | None = None,
) -> control_service_pb2.UpdateQuotaRequest:
    quota = control_service_pb2.Quota(
        name=name,
        scope=_scope(scope, "quota.scope"),
        dimension=_field(quota_dimension, dimension, "quota.dimension"),
        limit=limit,
        burst=burst,
    )
    if window is not None:
        quota.window.FromNanoseconds(round(window * 1e9))
    return control_service_pb2.UpdateQuotaRequest(quota=quota)


def update_budget(
    name: str,
    scope: str,
    limit: Decimal | str | int,
    period: int | str,
    time_zone: str,
    warn_fraction: float,
) -> control_service_pb2.UpdateBudgetRequest:
    budget = control_service_pb2.Budget(
        name=name,
        scope=_scope(scope, "budget.scope"),
        limit=amount(limit, "budget.limit"),
        period=_field(budget_period, period, "budget.period"),
        time_zone=time_zone,
        warn_fraction=warn_fraction,
    )
    return control_service_pb2.UpdateBudgetRequest(budget=budget)


def update_alerts(
    url: str,
    secret: str,
    kinds: Sequence[int | str],
    budget_thresholds: Sequence[float],
    wait_after: float | None,
    min_interval: float | None,
    queue_size: int,
) -> control_service_pb2.UpdateAlertsRequest:
    alerts = control_service_pb2.Alerts(
        url=url,
        secret=secret,
        kinds=[_field(alert_kind, kind, f"alerts.kinds[{i}]") for i, kind in enumerate(kinds)],
        budget_thresholds=list(budget_thresholds),
        queue_size=queue_size,
    )
    if wait_after is not None:
        alerts.wait_after.FromNanoseconds(round(wait_after * 1e9))
    if min_interval is not None:
        alerts.min_interval.FromNanoseconds(round(min_interval * 1e9))
    return control_service_pb2.UpdateAlertsRequest(alerts=alerts)


def get_spend(
    scope: str | None, period: int | str, since: str
) -> control_service_pb2.GetSpendRequest:
    request = control_service_pb2.GetSpendRequest(
        period=_field(budget_period, period, "period"), since=since
    )
    if scope:
        parsed = _scope(scope, "scope", value_required=False)
        request.scope_kind = parsed.kind
        request.scope_value = parsed.value
    return request


def amount(value: Decimal | str | int, field: str) -> common_pb2.Money:
    """A USD amount as Money; ValueError naming `field` when it is not a finite number."""
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(f"{field}: expected an amount such as 5.00, got {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"{field}: expected an amount such as 5.00, got {value!r}")
    return from_decimal(number)


def _scope(text: str, field: str, *, value_required: bool = True) -> control_service_pb2.Scope:
    try:
        return scope_message(text, value_required=value_required)
    except ValueError as error:
        raise ValueError(f"{field}: {error}") from None


def _field(convert: Callable[[V], T], value: V, field: str) -> T:
    try:
        return convert(value)
    except ValueError as error:
        raise ValueError(f"{field}: {error}") from None


def _struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    try:
        struct.update(dict(values))
    except (ValueError, TypeError) as error:
        # Struct holds JSON values only; say so before the server sees a half-built message.
        raise ValueError(f"input must be JSON-compatible: {error}") from None
    return struct


def workflow_insights(
    name_or_id: str, window: float
) -> control_service_pb2.GetWorkflowInsightsRequest:
    request = control_service_pb2.GetWorkflowInsightsRequest(workflow=workflow_name(name_or_id))
    if window:
        request.window.FromNanoseconds(round(window * 1e9))
    return request
