"""WorkerService messages <-> domain values: a worker's `open` (checked, bad
input named by its field), attempt tasks, and the provider interface's
completion shapes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import struct_pb2

from podium.core.errors import FieldViolation, InvalidArgument
from podium.core.failures import Failure
from podium.core.jsonvalues import from_json_numbers
from podium.engine.workers import AgentDeclaration, RemoteTask, check_schema
from podium.plugins.api import (
    Completion,
    CompletionRequest,
    LlmResult,
    Message,
    Target,
    ToolCall,
    ToolSpec,
)
from podium.server import translate
from podium.server.struct_values import struct_to_dict, value_to_python
from podium.v1 import worker_service_pb2 as pb

AGENT_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,62}")
QUEUE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,63}")
MAX_IDENTITY = 200
MAX_CONCURRENT_TASKS = 10_000
MAX_PROGRESS_MESSAGE = 1000
MAX_FAILURE_MESSAGE = 4000


@dataclass(frozen=True, slots=True)
class SessionOpening:
    identity: str
    sdk: str
    queues: tuple[str, ...]
    agents: tuple[AgentDeclaration, ...]
    capacity: int


def opening(message: pb.OpenSession) -> SessionOpening:
    """The session a worker asks for; InvalidArgument listing every problem."""
    problems: list[FieldViolation] = []
    if len(message.identity) > MAX_IDENTITY:
        problems.append(FieldViolation("open.identity", f"at most {MAX_IDENTITY} characters"))
    if not message.queues:
        problems.append(FieldViolation("open.queues", "at least one task queue is required"))
    for index, queue in enumerate(message.queues):
        if not QUEUE_NAME.fullmatch(queue):
            problems.append(
                FieldViolation(f"open.queues[{index}]", "must match [A-Za-z0-9_.-]{1,63}")
            )
    if not 1 <= message.max_concurrent_tasks <= MAX_CONCURRENT_TASKS:
        problems.append(
            FieldViolation(
                "open.max_concurrent_tasks", f"must be between 1 and {MAX_CONCURRENT_TASKS}"
            )
        )
    if not message.agents:
        problems.append(FieldViolation("open.agents", "at least one agent is required"))
    agents: list[AgentDeclaration] = []
    seen: set[str] = set()
    for index, agent in enumerate(message.agents):
        where = f"open.agents[{index}]"
        if not AGENT_NAME.fullmatch(agent.name):
            problems.append(FieldViolation(f"{where}.name", "must match [a-z][a-z0-9_.-]{0,62}"))
        elif agent.name in seen:
            problems.append(FieldViolation(f"{where}.name", f"{agent.name!r} is declared twice"))
        seen.add(agent.name)
        schemas: dict[str, dict[str, Any] | None] = {}
        for kind in ("config_schema", "input_schema", "output_schema"):
            if not agent.HasField(kind):
                schemas[kind] = None
                continue
            try:
                schema = struct_to_dict(getattr(agent, kind), f"{where}.{kind}")
            except InvalidArgument as error:
                problems.extend(error.violations)
                continue
            reason = check_schema(schema)
            if reason is not None:
                problems.append(FieldViolation(f"{where}.{kind}", f"not a JSON Schema: {reason}"))
            schemas[kind] = schema
        agents.append(
            AgentDeclaration(
                agent.name,
                agent.version,
                agent.description,
                schemas.get("config_schema"),
                schemas.get("input_schema"),
                schemas.get("output_schema"),
            )
        )
    if problems:
        raise InvalidArgument("invalid worker session", problems, reason="INVALID_WORKER_SESSION")
    return SessionOpening(
        message.identity,
        message.sdk,
        tuple(message.queues),
        tuple(agents),
        message.max_concurrent_tasks,
    )


def task_message(task: RemoteTask) -> pb.ConnectResponse:
    return pb.ConnectResponse(
        task=pb.AttemptTask(
            attempt_token=task.token,
            run=translate.run_name(task.run_id),
            workflow=translate.workflow_name(task.workflow_id),
            step_id=task.step_id,
            item=task.item,
            attempt=task.attempt,
            agent=task.agent,
            queue=task.queue,
            input=translate.value(task.input),
            config=translate.struct(dict(task.config)),
            attempt_deadline=translate.timestamp(task.attempt_deadline),
            step_deadline=translate.timestamp(task.step_deadline),
            heartbeat_timeout=translate.duration(task.heartbeat_timeout),
            traceparent=task.traceparent,
            tools=[tool_spec_message(tool) for tool in task.tools],
        )
    )


def output_value(message: pb.CompleteAttempt) -> Any:
    """A worker's output as Python (InvalidArgument when it holds what JSON
    cannot: NaN, infinities, absurd nesting)."""
    if not message.HasField("output"):
        return None
    return from_json_numbers(value_to_python(message.output, "complete.output"))


def failure_value(message: pb.FailAttempt) -> Failure:
    failure = message.failure
    kind = failure.type[:MAX_FAILURE_MESSAGE] or "WorkerError"
    return Failure(kind, failure.message[:MAX_FAILURE_MESSAGE], failure.retryable)


def tool_spec_message(tool: ToolSpec) -> pb.ToolSpec:
    return pb.ToolSpec(
        name=tool.name,
        description=tool.description,
        parameters=translate.struct(dict(tool.parameters)),
    )


def _tool_call(message: pb.ToolCall, field: str) -> ToolCall:
    return ToolCall(message.id, message.name, struct_to_dict(message.arguments, field))


def _tool_call_message(call: ToolCall) -> pb.ToolCall:
    return pb.ToolCall(id=call.id, name=call.name, arguments=translate.struct(dict(call.arguments)))


def completion_request(message: pb.CompletionRequest) -> CompletionRequest:
    field = "request"
    return CompletionRequest(
        model=message.model,
        messages=[
            Message(
                role=m.role,
                content=m.content,
                tool_calls=[
                    _tool_call(c, f"{field}.messages[{i}].tool_calls[{j}].arguments")
                    for j, c in enumerate(m.tool_calls)
                ],
                tool_call_id=m.tool_call_id,
                name=m.name,
            )
            for i, m in enumerate(message.messages)
        ],
        max_tokens=message.max_tokens if message.HasField("max_tokens") else None,
        temperature=message.temperature if message.HasField("temperature") else None,
        options=struct_to_dict(message.options, f"{field}.options"),
        tools=[
            ToolSpec(t.name, t.description, struct_to_dict(t.parameters, f"{field}.tools[{i}]"))
            for i, t in enumerate(message.tools)
        ],
        response_format=struct_to_dict(message.response_format, f"{field}.response_format")
        if message.HasField("response_format")
        else None,
        stream=message.stream,
    )


def targets(messages: Sequence[pb.ModelTarget]) -> list[Target]:
    return [Target(m.provider, m.model) for m in messages]


def completion_message(completion: Completion) -> pb.Completion:
    return pb.Completion(
        text=completion.text,
        usage=translate.usage(completion.usage),
        finish_reason=completion.finish_reason,
        model=completion.model,
        tool_calls=[_tool_call_message(call) for call in completion.tool_calls],
    )


def result_message(result: LlmResult) -> pb.CallModelResponse:
    return pb.CallModelResponse(
        completion=completion_message(result.completion),
        provider=result.provider,
        model=result.model,
        cost=translate.money(result.cost),
    )


def arguments(message: pb.CallToolRequest) -> dict[str, Any]:
    return struct_to_dict(message.arguments, "arguments")


def tool_output(value: Any) -> struct_pb2.Value:
    return translate.value(value)
