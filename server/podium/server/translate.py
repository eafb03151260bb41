"""Proto <-> domain translation. No decisions here: shapes only."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2

from podium.core.failures import Failure
from podium.core.model import AttemptRecord, Event, RunRecord, RunView, StepRecord, Usage
from podium.core.spec import (
    ApprovalSpec,
    CacheSpec,
    CallbackSpec,
    ChildWorkflowSpec,
    CompensationSpec,
    FailurePolicy,
    ForEachSpec,
    LoopSpec,
    NotificationSpec,
    RetrierSpec,
    RunConcurrencySpec,
    StepSpec,
    TriggerRule,
    WaitForSignalSpec,
    WaitSpec,
    WorkflowSpec,
    WorkflowVersion,
)
from podium.engine.schedules import NOMINAL_LABEL, SCHEDULE_LABEL
from podium.server.struct_values import struct_to_dict
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
    # As Timestamp.FromNanoseconds, without its Python-level checks: this
    # runs for every event sent.
    whole, nanos = divmod(int(seconds * 1e9), 1_000_000_000)
    return timestamp_pb2.Timestamp(seconds=whole, nanos=nanos)


def money(amount: Decimal) -> common_pb2.Money:
    if not amount:
        return common_pb2.Money(currency_code="USD")
    nanos_total = int((amount * NANOS).to_integral_value())
    units, nanos = divmod(abs(nanos_total), 1_000_000_000)
    sign = -1 if nanos_total < 0 else 1
    return common_pb2.Money(currency_code="USD", units=sign * units, nanos=sign * nanos)


def money_to_decimal(message: common_pb2.Money) -> Decimal:
    return Decimal(message.units) + Decimal(message.nanos) / NANOS


_NO_USAGE = Usage()


def usage(value: Usage) -> common_pb2.Usage:
    if value == _NO_USAGE:
        return common_pb2.Usage()
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
    """A JSON value (already checked: JSON-compatible, finite numbers) as a
    protobuf Value; what json_format.ParseDict gives, at a fraction of its cost."""
    if isinstance(data, dict):
        message = struct_pb2.Value()
        message.struct_value.SetInParent()  # chosen in the oneof even when empty
        message.struct_value.update(data)
        return message
    if isinstance(data, list):
        message = struct_pb2.Value()
        message.list_value.SetInParent()
        message.list_value.extend(data)
        return message
    if data is None:
        return struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)
    if isinstance(data, bool):
        return struct_pb2.Value(bool_value=data)
    if isinstance(data, str):
        return struct_pb2.Value(string_value=data)
    if isinstance(data, int | float):
        return struct_pb2.Value(number_value=data)
    message = struct_pb2.Value()
    json_format.ParseDict(data, message)  # anything else: its error, as before
    return message


# -- workflows -----------------------------------------------------------------


def seconds(message: duration_pb2.Duration) -> float:
    return message.ToNanoseconds() / 1e9


def duration(value: float | None) -> duration_pb2.Duration | None:
    if value is None:
        return None
    message = duration_pb2.Duration()
    message.FromNanoseconds(round(value * 1e9))
    return message


_JITTER = {workflow_pb2.JITTER_FULL: "FULL"}
_JITTER_BACK = {"FULL": workflow_pb2.JITTER_FULL, "NONE": workflow_pb2.JITTER_NONE}
_ON_FAILURE: dict[int, FailurePolicy] = {workflow_pb2.FAILURE_POLICY_CONTINUE: "CONTINUE"}
_ON_FAILURE_BACK = {"CONTINUE": workflow_pb2.FAILURE_POLICY_CONTINUE}
_TRIGGER: dict[int, TriggerRule] = {
    workflow_pb2.TRIGGER_RULE_ALL_DONE: "ALL_DONE",
    workflow_pb2.TRIGGER_RULE_ANY_SUCCEEDED: "ANY_SUCCEEDED",
}
_TRIGGER_BACK = {
    "ALL_DONE": workflow_pb2.TRIGGER_RULE_ALL_DONE,
    "ANY_SUCCEEDED": workflow_pb2.TRIGGER_RULE_ANY_SUCCEEDED,
}


def _retriers(messages: Iterable[workflow_pb2.Retrier]) -> list[RetrierSpec]:
    return [
        RetrierSpec(
            error_equals=list(r.error_equals),
            interval=seconds(r.interval) if r.HasField("interval") else 1.0,
            backoff_rate=r.backoff_rate or 2.0,
            max_interval=seconds(r.max_interval) if r.HasField("max_interval") else None,
            max_attempts=r.max_attempts or 3,
            jitter="FULL" if r.jitter == workflow_pb2.JITTER_FULL else "NONE",
        )
        for r in messages
    ]


def _retriers_to_proto(retriers: Iterable[RetrierSpec]) -> list[workflow_pb2.Retrier]:
    return [
        workflow_pb2.Retrier(
            error_equals=r.error_equals,
            interval=duration(r.interval),
            backoff_rate=r.backoff_rate,
            max_interval=duration(r.max_interval),
            max_attempts=r.max_attempts,
            jitter=_JITTER_BACK[r.jitter],
        )
        for r in retriers
    ]


def _step_from_proto(step: workflow_pb2.Step, field: str) -> StepSpec:
    wait: WaitSpec | None = None
    if step.HasField("wait"):
        kind = step.wait.WhichOneof("until")
        wait = WaitSpec(
            duration=seconds(step.wait.duration) if kind == "duration" else None,
            time=step.wait.time.ToNanoseconds() / 1e9 if kind == "time" else None,
            time_expression=step.wait.time_expression,
        )
    return StepSpec(
        id=step.id,
        agent=step.agent,
        input=dict(step.input),
        depends_on=list(step.depends_on),
        config=struct_to_dict(step.config, f"{field}.config"),
        description=step.description,
        retry=_retriers(step.retry),
        attempt_timeout=seconds(step.attempt_timeout) if step.HasField("attempt_timeout") else None,
        timeout=seconds(step.timeout) if step.HasField("timeout") else None,
        on_failure=_ON_FAILURE.get(step.on_failure, "FAIL"),
        trigger_rule=_TRIGGER.get(step.trigger_rule, "ALL_SUCCEEDED"),
        when=step.when,
        for_each=ForEachSpec(
            items=step.for_each.items,
            max_concurrency=step.for_each.max_concurrency,
            tolerated_failure_count=step.for_each.tolerated_failure_count,
            tolerated_failure_percent=step.for_each.tolerated_failure_percent,
            concurrency_key=step.for_each.concurrency_key,
            max_per_key=step.for_each.max_per_key,
        )
        if step.HasField("for_each")
        else None,
        loop=LoopSpec(until=step.loop.until, max_iterations=step.loop.max_iterations)
        if step.HasField("loop")
        else None,
        wait=wait,
        approval=ApprovalSpec(
            prompt=step.approval.prompt,
            timeout=seconds(step.approval.timeout) if step.approval.HasField("timeout") else None,
        )
        if step.HasField("approval")
        else None,
        compensate=CompensationSpec(
            agent=step.compensate.agent,
            input=dict(step.compensate.input),
            config=struct_to_dict(step.compensate.config, f"{field}.compensate.config"),
        )
        if step.HasField("compensate")
        else None,
        cache=CacheSpec(ttl=seconds(step.cache.ttl)) if step.HasField("cache") else None,
        fail_fast=step.fail_fast,
        tools=list(step.tools),
        task_queue=step.task_queue,
        heartbeat_timeout=seconds(step.heartbeat_timeout)
        if step.HasField("heartbeat_timeout")
        else None,
        wait_for_signal=WaitForSignalSpec(
            name=step.wait_for_signal.name,
            filter=step.wait_for_signal.filter,
            timeout=seconds(step.wait_for_signal.timeout)
            if step.wait_for_signal.HasField("timeout")
            else None,
        )
        if step.HasField("wait_for_signal")
        else None,
        callback=CallbackSpec(
            timeout=seconds(step.callback.timeout) if step.callback.HasField("timeout") else None
        )
        if step.HasField("callback")
        else None,
        workflow=ChildWorkflowSpec(
            name=step.workflow.name.removeprefix("workflows/"),
            version=step.workflow.version,
            input=dict(step.workflow.input),
        )
        if step.HasField("workflow")
        else None,
        output_schema=_optional_struct(step, "output_schema", field),
    )


def notification_from_proto(message: workflow_pb2.Notification) -> NotificationSpec:
    return NotificationSpec(url=message.url, secret=message.secret)


def _optional_struct(message: Any, name: str, field: str) -> dict[str, Any] | None:
    if not message.HasField(name):
        return None
    return struct_to_dict(getattr(message, name), f"{field}.{name}")


def spec_from_proto(message: workflow_pb2.WorkflowSpec) -> WorkflowSpec:
    return WorkflowSpec(
        description=message.description,
        steps=[
            _step_from_proto(step, f"spec.steps[{index}]")
            for index, step in enumerate(message.steps)
        ],
        output=dict(message.output),
        max_concurrency=message.max_concurrency,
        labels=dict(message.labels),
        retry=_retriers(message.retry),
        timeout=seconds(message.timeout) if message.HasField("timeout") else None,
        max_cost=money_to_decimal(message.max_cost) if message.HasField("max_cost") else None,
        notification=notification_from_proto(message.notification)
        if message.HasField("notification")
        else None,
        input_schema=_optional_struct(message, "input_schema", "spec"),
        output_schema=_optional_struct(message, "output_schema", "spec"),
        run_concurrency=RunConcurrencySpec(
            key=message.run_concurrency.key, max_runs=message.run_concurrency.max_runs
        )
        if message.HasField("run_concurrency")
        else None,
    )


def _step_to_proto(step: StepSpec) -> workflow_pb2.Step:
    message = workflow_pb2.Step(
        id=step.id,
        agent=step.agent,
        input=step.input,
        depends_on=step.depends_on,
        config=struct(step.config) if step.config else None,
        description=step.description,
        retry=_retriers_to_proto(step.retry),
        attempt_timeout=duration(step.attempt_timeout),
        timeout=duration(step.timeout),
        on_failure=_ON_FAILURE_BACK.get(step.on_failure, workflow_pb2.FAILURE_POLICY_UNSPECIFIED),
        trigger_rule=_TRIGGER_BACK.get(step.trigger_rule, workflow_pb2.TRIGGER_RULE_UNSPECIFIED),
        when=step.when,
        fail_fast=step.fail_fast,
        tools=step.tools,
        task_queue=step.task_queue,
        heartbeat_timeout=duration(step.heartbeat_timeout),
        output_schema=struct(step.output_schema),
    )
    if step.for_each is not None:
        message.for_each.CopyFrom(workflow_pb2.ForEach(**step.for_each.model_dump()))
    if step.loop is not None:
        message.loop.CopyFrom(workflow_pb2.Loop(**step.loop.model_dump()))
    if step.wait is not None:
        if step.wait.duration is not None:
            message.wait.duration.FromNanoseconds(round(step.wait.duration * 1e9))
        elif step.wait.time is not None:
            message.wait.time.FromNanoseconds(round(step.wait.time * 1e9))
        else:
            message.wait.time_expression = step.wait.time_expression
    if step.approval is not None:
        message.approval.CopyFrom(
            workflow_pb2.Approval(
                prompt=step.approval.prompt, timeout=duration(step.approval.timeout)
            )
        )
    if step.compensate is not None:
        message.compensate.CopyFrom(
            workflow_pb2.Compensation(
                agent=step.compensate.agent,
                input=step.compensate.input,
                config=struct(step.compensate.config) if step.compensate.config else None,
            )
        )
    if step.cache is not None:
        message.cache.CopyFrom(workflow_pb2.Cache(ttl=duration(step.cache.ttl)))
    if step.wait_for_signal is not None:
        message.wait_for_signal.CopyFrom(
            workflow_pb2.WaitForSignal(
                name=step.wait_for_signal.name,
                filter=step.wait_for_signal.filter,
                timeout=duration(step.wait_for_signal.timeout),
            )
        )
    if step.callback is not None:
        message.callback.CopyFrom(workflow_pb2.Callback(timeout=duration(step.callback.timeout)))
    if step.workflow is not None:
        message.workflow.CopyFrom(
            workflow_pb2.ChildWorkflow(
                name=step.workflow.name,
                version=step.workflow.version,
                input=step.workflow.input,
            )
        )
    return message


def spec_to_proto(spec: WorkflowSpec) -> workflow_pb2.WorkflowSpec:
    return workflow_pb2.WorkflowSpec(
        description=spec.description,
        steps=[_step_to_proto(step) for step in spec.steps],
        output=spec.output,
        max_concurrency=spec.max_concurrency,
        labels=spec.labels,
        retry=_retriers_to_proto(spec.retry),
        timeout=duration(spec.timeout),
        max_cost=money(spec.max_cost) if spec.max_cost is not None else None,
        notification=workflow_pb2.Notification(
            url=spec.notification.url, secret=spec.notification.secret
        )
        if spec.notification is not None
        else None,
        input_schema=struct(spec.input_schema),
        output_schema=struct(spec.output_schema),
        run_concurrency=workflow_pb2.RunConcurrency(**spec.run_concurrency.model_dump())
        if spec.run_concurrency is not None
        else None,
    )


def workflow_to_proto(workflow: WorkflowVersion) -> workflow_pb2.Workflow:
    if workflow.applied:
        spec = workflow_pb2.WorkflowSpec.FromString(workflow.applied)
    else:  # stored before definitions were kept as applied
        spec = spec_to_proto(workflow.spec)
    return workflow_pb2.Workflow(
        name=workflow_name(workflow.workflow_id),
        version=workflow.version,
        spec=spec,
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
        item=attempt.item,
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
        due_time=timestamp(step.due_time),
        items_total=step.items_total,
        items_succeeded=step.items_succeeded,
        items_failed=step.items_failed,
        iterations=step.iterations,
        callback_token=step.callback_token,
    )
    if step.input is not None:
        message.input.SetInParent()  # present even when empty
        message.input.update(step.input)
    if step.output is not None:
        message.output.CopyFrom(value(step.output))
    return message


def run_to_proto(run: RunRecord, steps: Iterable[StepRecord] = ()) -> run_pb2.Run:
    message = run_pb2.Run()
    fill_run(message, run, steps)
    return message


def fill_run(
    target: run_pb2.Run,
    run: RunRecord,
    steps: Iterable[StepRecord] = (),
    *,
    with_input: bool = True,
) -> None:
    """Translates the run into `target` (a new message's own field, such as a
    response's `run`): its input and output are converted where they go, not
    built apart and copied (a copy of a large Struct holds the interpreter
    lock all along). Without `with_input`, the input is left for the caller."""
    target.MergeFrom(
        run_pb2.Run(
            name=run_name(run.run_id),
            workflow=workflow_name(run.workflow_id),
            workflow_version=run.workflow_version,
            state=run_pb2.RunState.ValueType(int(run.state)),
            failure=failure(run.failure),
            request_id=run.request_id,
            labels=run.labels,
            max_concurrency=run.max_concurrency,
            create_time=timestamp(run.create_time),
            start_time=timestamp(run.start_time),
            end_time=timestamp(run.end_time),
            usage=usage(run.usage),
            cost=money(run.cost),
            last_sequence=run.last_sequence,
            priority=run.priority,
            max_cost=money(run.max_cost) if run.max_cost is not None else None,
            rerun_of=run_name(run.rerun_of) if run.rerun_of else "",
            parent_run=run_name(run.parent_run_id) if run.parent_run_id else "",
            parent_step=run.parent_step_id,
            depth=run.depth,
            **_scheduled(run.labels),
        )
    )
    target.steps.extend(step_to_proto(step) for step in steps)
    if with_input:
        fill_struct(target.input, run.input)
    if run.output is not None:
        fill_struct(target.output, run.output)


def fill_struct(target: struct_pb2.Struct, value: dict[str, Any]) -> None:
    """`value` into `target`, present even when empty (as a Struct passed to a
    message's constructor is)."""
    target.SetInParent()
    target.update(value)


def _scheduled(labels: dict[str, str]) -> dict[str, Any]:
    """Run.schedule and Run.nominal_time, from the labels the scheduler gives a run."""
    schedule_id = labels.get(SCHEDULE_LABEL)
    if not schedule_id:
        return {}
    fields: dict[str, Any] = {"schedule": f"schedules/{schedule_id}"}
    nominal = labels.get(NOMINAL_LABEL, "")
    if nominal:
        stamp = timestamp_pb2.Timestamp()
        stamp.FromJsonString(nominal)
        fields["nominal_time"] = stamp
    return fields


def run_view_to_proto(view: RunView) -> run_pb2.Run:
    return run_to_proto(view.run, view.steps)


# -- events ----------------------------------------------------------------------


def event_to_proto(event: Event) -> event_pb2.RunEvent:
    # Only the fields an event sets are passed: an event is translated once
    # per send (shared by every subscriber), and most of its fields are empty.
    fields: dict[str, Any] = {
        "run": f"runs/{event.run_id}",
        "sequence": event.sequence,
        "time": timestamp(event.time),
        "type": int(event.type),
        "workflow": f"workflows/{event.workflow_id}",
        "run_state": int(event.run_state),
    }
    if event.step_id:
        fields["step_id"] = event.step_id
    if event.step_state is not None:
        fields["step_state"] = int(event.step_state)
    if event.attempt:
        fields["attempt"] = event.attempt
    if event.item:
        fields["item"] = event.item
    if event.output is not None:
        fields["output"] = value(event.output)
    if event.usage is not None:
        fields["usage"] = usage(event.usage)
    if event.cost is not None:
        fields["cost"] = money(event.cost)
    if event.message:
        fields["message"] = event.message
    if event.progress:
        fields["progress"] = event.progress
    if event.failure is not None:
        fields["failure"] = failure(event.failure)
    if event.retry_delay is not None:
        fields["retry_delay"] = duration(event.retry_delay)
    if event.due_time is not None:
        fields["due_time"] = timestamp(event.due_time)
    if event.decision:
        fields["decision"] = event.decision
    for name in _EVENT_TEXTS:
        text = getattr(event, name)
        if text:
            fields[name] = text
    return event_pb2.RunEvent(**fields)


_EVENT_TEXTS = (
    "provider",
    "model",
    "breaker",
    "budget",
    "price_version",
    "tool",
    "actor",
    "callback_token",
)
