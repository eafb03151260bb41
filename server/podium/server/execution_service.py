"""ExecutionService: translation only."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from google.protobuf import struct_pb2

from podium.core.errors import FieldViolation, InvalidArgument
from podium.core.jsonvalues import OFF_LOOP_BYTES, exceeds_json_size, from_json_numbers
from podium.core.model import RunView
from podium.core.states import RunState
from podium.engine.engine import SNAPSHOT_ATTEMPTS, Engine
from podium.engine.schedules import SCHEDULE_LABEL
from podium.server import requests, translate
from podium.server.caller import current_caller
from podium.server.status import invalid, unary
from podium.server.struct_values import struct_to_dict, value_to_python
from podium.telemetry.propagation import caller_traceparent
from podium.v1 import event_pb2, execution_service_pb2, execution_service_pb2_grpc, run_pb2

Context = grpc.aio.ServicerContext[Any, Any]
MAX_REQUEST_ID = 128


class ExecutionService(execution_service_pb2_grpc.ExecutionServiceServicer):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @unary
    async def StartRun(
        self, request: execution_service_pb2.StartRunRequest, context: Context
    ) -> execution_service_pb2.StartRunResponse:
        workflow_id = requests.workflow_id(request.workflow, "workflow")
        if request.workflow_version < 0:
            raise invalid("workflow_version", "must not be negative")
        if len(request.request_id) > MAX_REQUEST_ID:
            raise invalid("request_id", f"at most {MAX_REQUEST_ID} characters")
        # A large input is converted in worker threads, both ways (see OFF_LOOP_BYTES).
        large = request.input.ByteSize() > OFF_LOOP_BYTES
        if large:
            input = await asyncio.to_thread(struct_to_dict, request.input, "input")
        else:
            input = struct_to_dict(request.input, "input")
        view = await self._engine.start_run(
            workflow_id,
            version=request.workflow_version,
            input=input,
            request_id=request.request_id,
            labels=dict(request.labels),
            max_concurrency=request.max_concurrency,
            priority=request.priority,
            tenant=current_caller().tenant,
            max_cost=(
                translate.money_to_decimal(request.max_cost)
                if request.HasField("max_cost")
                else None
            ),
            # The run's span joins the caller's trace (W3C traceparent metadata).
            trace_parent=caller_traceparent(context.invocation_metadata()),
            notification=translate.notification_from_proto(request.notification)
            if request.HasField("notification")
            else None,
        )
        response = execution_service_pb2.StartRunResponse()
        await _fill_run(response.run, view)
        return response

    @unary
    async def GetRun(
        self, request: execution_service_pb2.GetRunRequest, context: Context
    ) -> execution_service_pb2.GetRunResponse:
        view = await self._engine.get_run(
            requests.run_id(request.name), tenant=current_caller().tenant
        )
        response = execution_service_pb2.GetRunResponse()
        if not view.live and _large(view):
            # A 10,000-item fan-out takes a third of a second of Python to
            # translate: in a worker thread, which hands the interpreter back to
            # the event loop every switch interval. Never a live view: the
            # engine's own records change while the run goes on.
            await asyncio.to_thread(translate.fill_run, response.run, view.run, view.steps)
        else:
            await _fill_run(response.run, view)
        return response

    @unary
    async def ListRuns(
        self, request: execution_service_pb2.ListRunsRequest, context: Context
    ) -> execution_service_pb2.ListRunsResponse:
        workflow_id = requests.workflow_id(request.workflow, "workflow") if request.workflow else ""
        states = []
        for i, state in enumerate(request.states):
            try:
                states.append(RunState(state))
            except ValueError:
                raise invalid(f"states[{i}]", f"unknown run state {state}") from None
        labels = dict(request.labels)
        if request.schedule:
            # A scheduled run carries its schedule as a label (podium.engine.schedules).
            labels[SCHEDULE_LABEL] = requests.schedule_id(request.schedule, "schedule")
        runs, token = await self._engine.list_runs(
            request.page_size,
            request.page_token,
            workflow_id=workflow_id,
            states=states,
            labels=labels,
            tenant=current_caller().tenant,
            parent_run_id=requests.run_id(request.parent_run, "parent_run")
            if request.parent_run
            else "",
        )
        return execution_service_pb2.ListRunsResponse(
            runs=[translate.run_to_proto(run) for run in runs], next_page_token=token
        )

    @unary
    async def CancelRun(
        self, request: execution_service_pb2.CancelRunRequest, context: Context
    ) -> execution_service_pb2.CancelRunResponse:
        view = await self._engine.cancel_run(
            requests.run_id(request.name),
            requests.reason(request.reason),
            tenant=current_caller().tenant,
        )
        return execution_service_pb2.CancelRunResponse(run=translate.run_view_to_proto(view))

    @unary
    async def PauseRun(
        self, request: execution_service_pb2.PauseRunRequest, context: Context
    ) -> execution_service_pb2.PauseRunResponse:
        caller = current_caller()
        view = await self._engine.pause_run(
            requests.run_id(request.name),
            requests.reason(request.reason),
            actor=caller.subject,
            tenant=caller.tenant,
        )
        return execution_service_pb2.PauseRunResponse(run=translate.run_view_to_proto(view))

    @unary
    async def ResumeRun(
        self, request: execution_service_pb2.ResumeRunRequest, context: Context
    ) -> execution_service_pb2.ResumeRunResponse:
        caller = current_caller()
        view = await self._engine.resume_run(
            requests.run_id(request.name), actor=caller.subject, tenant=caller.tenant
        )
        return execution_service_pb2.ResumeRunResponse(run=translate.run_view_to_proto(view))

    @unary
    async def RerunRun(
        self, request: execution_service_pb2.RerunRunRequest, context: Context
    ) -> execution_service_pb2.RerunRunResponse:
        if len(request.request_id) > MAX_REQUEST_ID:
            raise invalid("request_id", f"at most {MAX_REQUEST_ID} characters")
        view = await self._engine.rerun_run(
            requests.run_id(request.name),
            list(request.from_steps),
            tenant=current_caller().tenant,
            request_id=request.request_id,
        )
        return execution_service_pb2.RerunRunResponse(run=translate.run_view_to_proto(view))

    @unary
    async def RerunRuns(
        self, request: execution_service_pb2.RerunRunsRequest, context: Context
    ) -> execution_service_pb2.RerunRunsResponse:
        workflow_id = requests.workflow_id(request.workflow, "workflow") if request.workflow else ""
        if len(request.request_id) > MAX_REQUEST_ID:
            raise invalid("request_id", f"at most {MAX_REQUEST_ID} characters")
        states = []
        for i, state in enumerate(request.states):
            try:
                states.append(RunState(state))
            except ValueError:
                raise invalid(f"states[{i}]", f"unknown run state {state}") from None
        pairs = await self._engine.rerun_runs(
            workflow_id=workflow_id,
            states=states,
            labels=dict(request.labels),
            from_steps=list(request.from_steps),
            max_runs=request.max_runs,
            tenant=current_caller().tenant,
            request_id=request.request_id,
        )
        return execution_service_pb2.RerunRunsResponse(
            runs=[translate.run_name(view.run.run_id) for _, view in pairs],
            originals=[translate.run_name(original) for original, _ in pairs],
        )

    @unary
    async def ResolveApproval(
        self, request: execution_service_pb2.ResolveApprovalRequest, context: Context
    ) -> execution_service_pb2.ResolveApprovalResponse:
        run_id = _approval_run_id(request)  # before touching the engine: bad input changes nothing
        comment = requests.reason(request.comment, "comment")
        view = await self._engine.resolve_approval(
            run_id,
            request.step_id,
            approve=request.decision == event_pb2.APPROVAL_DECISION_APPROVE,
            comment=comment,
            actor=current_caller().subject,
            tenant=current_caller().tenant,
        )
        return execution_service_pb2.ResolveApprovalResponse(run=translate.run_view_to_proto(view))

    @unary
    async def SignalRun(
        self, request: execution_service_pb2.SignalRunRequest, context: Context
    ) -> execution_service_pb2.SignalRunResponse:
        run_id = requests.run_id(request.run, "run")
        if len(request.request_id) > MAX_REQUEST_ID:
            raise invalid("request_id", f"at most {MAX_REQUEST_ID} characters")
        caller = current_caller()
        signal = await self._engine.signal_run(
            run_id,
            request.name,
            _payload(request.payload) if request.HasField("payload") else None,
            request_id=request.request_id,
            actor=caller.subject,
            tenant=caller.tenant,
        )
        return execution_service_pb2.SignalRunResponse(
            position=signal.position, consumed_by=signal.consumed_by
        )

    @unary
    async def CompleteCallback(
        self, request: execution_service_pb2.CompleteCallbackRequest, context: Context
    ) -> execution_service_pb2.CompleteCallbackResponse:
        if not request.token:
            raise invalid("token", "required: the token of a CALLBACK_ISSUED event")
        caller = current_caller()
        record = await self._engine.complete_callback(
            request.token,
            _payload(request.payload) if request.HasField("payload") else None,
            actor=caller.subject,
            tenant=caller.tenant,
        )
        return execution_service_pb2.CompleteCallbackResponse(
            run=f"runs/{record.run_id}", step_id=record.step_id
        )

    @unary
    async def DeleteRun(
        self, request: execution_service_pb2.DeleteRunRequest, context: Context
    ) -> execution_service_pb2.DeleteRunResponse:
        await self._engine.delete_run(requests.run_id(request.name), tenant=current_caller().tenant)
        return execution_service_pb2.DeleteRunResponse()


async def _fill_run(target: run_pb2.Run, view: RunView) -> None:
    """The view into `target` (a response's own `run`, nothing copied after);
    a large input in a worker thread: an input never changes, so it is read
    there safely even while the run goes on."""
    large_input = _large_input(view)
    translate.fill_run(target, view.run, view.steps, with_input=not large_input)
    if large_input:
        await asyncio.to_thread(translate.fill_struct, target.input, view.run.input)


def _large_input(view: RunView) -> bool:
    """Whether the run's input is over OFF_LOOP_BYTES (its stored text says, once known)."""
    text = view.run.input_json
    return text is not None and len(text) > OFF_LOOP_BYTES


def _large(view: RunView) -> bool:
    """Whether translating the view would hold the event loop for long: many
    attempts, or a large input or output (cheap to tell: see exceeds_json_size)."""
    if sum(len(step.attempts) for step in view.steps) > SNAPSHOT_ATTEMPTS or _large_input(view):
        return True
    outputs = [view.run.output, *(step.output for step in view.steps)]
    return any(
        output is not None and exceeds_json_size(output, OFF_LOOP_BYTES) for output in outputs
    )


def _payload(value: struct_pb2.Value) -> Any:
    """A payload as JSON (numbers stay as the contract carries them: doubles,
    integral ones as ints, as a run's input)."""
    return from_json_numbers(value_to_python(value, "payload"))


_DECISIONS = (event_pb2.APPROVAL_DECISION_APPROVE, event_pb2.APPROVAL_DECISION_REJECT)


def _approval_run_id(request: execution_service_pb2.ResolveApprovalRequest) -> str:
    """The run id of a valid request; else InvalidArgument listing every problem at once."""
    violations: list[FieldViolation] = []
    run_id = ""
    try:
        run_id = requests.run_id(request.run, "run")
    except InvalidArgument as error:
        violations += error.violations
    if not request.step_id:
        violations.append(FieldViolation("step_id", "must name the approval step"))
    if request.decision not in _DECISIONS:
        violations.append(
            FieldViolation(
                "decision", "must be APPROVAL_DECISION_APPROVE or APPROVAL_DECISION_REJECT"
            )
        )
    if violations:
        raise InvalidArgument("invalid approval", violations)
    return run_id
