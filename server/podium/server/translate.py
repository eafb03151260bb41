"""Proto <-> domain translation. No decisions here: shapes only."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from podium.engine.expressions import from_json_numbers
from podium.engine.model import AttemptRecord, Event, Failure, RunRecord, RunView, StepRecord, Usage
from podium.engine.spec import StepSpec, WorkflowSpec, WorkflowVersion
from podium.v1 import common_pb2, event_pb2, run_pb2, workflow_pb2

NANOS = Decimal(1_000_000_000)


def workflow_name(workflow_id: str) -> str:
    return f"workflows/{workflow_id}"


def run_name(run_id: str) -> str:
    return f"runs/{run_id}"


# -- scalars -------------------------------------------------------------------


def timestamp(seconds: float | None) -> timestamp_pb2.Timestamp | None:
    if seconds is None:
        return None
    message = timestamp_pb2.Timestamp()
    message.FromNanoseconds(int(seconds * 1e9))
    return message


def money(amount: Decimal) -> common_pb2.Money:
    nanos_total = int((amount * NANOS).to_integral_value())
    units, nanos = divmod(abs(nanos_total), 1_000_000_000)
    sign = -1 if nanos_total < 0 else 1
    return common_pb2.Money(currency_code="USD", units=sign * units, nanos=sign * nanos)


def usage(value: Usage) -> common_pb2.Usage:
    return common_pb2.Usage(
        input_tokens=value.input_tokens,
        output_tokens=value.output_tokens,
        cached_input_tokens=value.cached_input_tokens,
        cache_write_tokens=value.cache_write_tokens,
        reasoning_tokens=value.reasoning_tokens,
        calls=value.calls,
    )


def failure(value: Failure | None) -> common_pb2.Failure | None:
    if value is None:
        return None
    return common_pb2.Failure(type=value.type, message=value.message, retryable=value.retryable)


def struct(value: dict[str, Any] | None) -> struct_pb2.Struct | None:
    if value is None:
        return None
    message = struct_pb2.Struct()
    message.update(value)
    return message


def value(data: Any) -> struct_pb2.Value:
    message = struct_pb2.Value()
    json_format.ParseDict(data, message)
    return message


def struct_to_dict(message: struct_pb2.Struct) -> dict[str, Any]:
    result: dict[str, Any] = from_json_numbers(json_format.MessageToDict(message))
    return result


# -- workflows -----------------------------------------------------------------


def spec_from_proto(message: workflow_pb2.WorkflowSpec) -> WorkflowSpec:
    return WorkflowSpec(
        description=message.description,
        steps=[
            StepSpec(
                id=step.id,
                agent=step.agent,
                input=dict(step.input),
                depends_on=list(step.depends_on),
                config=struct_to_dict(step.config),
                description=step.description,
            )
            for step in message.steps
        ],
        output=dict(message.output),
        max_concurrency=message.max_concurrency,
        labels=dict(message.labels),
    )


def spec_to_proto(spec: WorkflowSpec) -> workflow_pb2.WorkflowSpec:
    return workflow_pb2.WorkflowSpec(
        description=spec.description,
        steps=[
            workflow_pb2.Step(
                id=step.id,
                agent=step.agent,
                input=step.input,
                depends_on=step.depends_on,
                config=struct(step.config) if step.config else None,
                description=step.description,
            )
            for step in spec.steps
        ],
        output=spec.output,
        max_concurrency=spec.max_concurrency,
        labels=spec.labels,
    )


def workflow_to_proto(workflow: WorkflowVersion) -> workflow_pb2.Workflow:
    return workflow_pb2.Workflow(
        name=workflow_name(workflow.workflow_id),
        version=workflow.version,
        spec=spec_to_proto(workflow.spec),
        create_time=timestamp(workflow.create_time),
    )


# -- runs ----------------------------------------------------------------------


def attempt_to_proto(attempt: AttemptRecord) -> run_pb2.Attempt:
    return run_pb2.Attempt(
        number=attempt.number,
        state=run_pb2.AttemptState.ValueType(int(attempt.state)),
        start_time=timestamp(attempt.start_time),
        end_time=timestamp(attempt.end_time),
        failure=failure(attempt.failure),
        usage=usage(attempt.usage),
        cost=money(attempt.cost),
    )


def step_to_proto(step: StepRecord) -> run_pb2.StepRun:
    message = run_pb2.StepRun(
        step_id=step.step_id,
        agent=step.agent,
        state=run_pb2.StepState.ValueType(int(step.state)),
        failure=failure(step.failure),
        reason=step.reason,
        attempts=[attempt_to_proto(a) for a in step.attempts],
        start_time=timestamp(step.start_time),
        end_time=timestamp(step.end_time),
        usage=usage(step.usage),
        cost=money(step.cost),
    )
    if step.input is not None:
        message.input.CopyFrom(value(step.input))
    if step.output is not None:
        message.output.CopyFrom(value(step.output))
    return message


def run_to_proto(run: RunRecord, steps: Iterable[StepRecord] = ()) -> run_pb2.Run:
    return run_pb2.Run(
        name=run_name(run.run_id),
        workflow=workflow_name(run.workflow_id),
        workflow_version=run.workflow_version,
        state=run_pb2.RunState.ValueType(int(run.state)),
        input=struct(run.input),
        output=struct(run.output),
        failure=failure(run.failure),
        request_id=run.request_id,
        labels=run.labels,
        max_concurrency=run.max_concurrency,
        create_time=timestamp(run.create_time),
        start_time=timestamp(run.start_time),
        end_time=timestamp(run.end_time),
        steps=[step_to_proto(step) for step in steps],
        usage=usage(run.usage),
        cost=money(run.cost),
        last_sequence=run.last_sequence,
    )


def run_view_to_proto(view: RunView) -> run_pb2.Run:
    return run_to_proto(view.run, view.steps)


# -- events ----------------------------------------------------------------------


def event_to_proto(event: Event) -> event_pb2.RunEvent:
    message = event_pb2.RunEvent(
        run=run_name(event.run_id),
        sequence=event.sequence,
        time=timestamp(event.time),
        type=event_pb2.RunEventType.ValueType(int(event.type)),
        workflow=workflow_name(event.workflow_id),
        run_state=run_pb2.RunState.ValueType(int(event.run_state)),
        step_id=event.step_id,
        attempt=event.attempt,
        message=event.message,
        progress=event.progress,
        failure=failure(event.failure),
        provider=event.provider,
        model=event.model,
    )
    if event.step_state is not None:
        message.step_state = run_pb2.StepState.ValueType(int(event.step_state))
    if event.output is not None:
        message.output.CopyFrom(value(event.output))
    if event.usage is not None:
        message.usage.CopyFrom(usage(event.usage))
    if event.cost is not None:
        message.cost.CopyFrom(money(event.cost))
    return message
