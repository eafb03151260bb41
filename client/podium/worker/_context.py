"""What an agent receives on a worker: the StepContext of Podium's plugin
contract (ctx.input, ctx.config, ctx.llm, ctx.call_tool, ctx.report, ...),
served by RPCs to the server that sent the attempt.

This package imports nothing of the server: agents are duck-typed (name,
description, version, `async run(ctx)`), requests are read by attribute
(the plugin contract's CompletionRequest, Message, ToolSpec, Target), and
results are dataclasses with the plugin contract's attribute names. How a
refusal is raised is the host's choice (`raise_failure`), so that plugin
agents see the same exception types as in-process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2

from podium.v1 import common_pb2, worker_service_pb2, worker_service_pb2_grpc

__all__ = [
    "CallFailed",
    "FailureRaiser",
    "ModelCompletion",
    "ModelResult",
    "ModelToolCall",
    "ModelUsage",
    "ToolDescription",
    "WorkerStepContext",
]


class CallFailed(Exception):
    """A governed call refused or failed (the default `raise_failure`):
    `code` is the failure type (e.g. "podium.BudgetExceeded")."""

    def __init__(self, message: str, *, code: str, retryable: bool) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


# (type, message, retryable) -> the exception to raise in the agent.
FailureRaiser = Callable[[str, str, bool], BaseException]


def _default_raiser(type_: str, message: str, retryable: bool) -> BaseException:
    return CallFailed(message, code=type_, retryable=retryable)


@dataclass(frozen=True, slots=True)
class ModelUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    calls: int = 0


@dataclass(frozen=True, slots=True)
class ModelToolCall:
    id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ModelCompletion:
    text: str
    usage: ModelUsage
    finish_reason: str = "stop"
    model: str = ""
    tool_calls: Sequence[ModelToolCall] = ()
    remaining_requests: int | None = None
    remaining_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class ModelResult:
    """What ctx.llm.complete returns (the plugin contract's LlmResult)."""

    completion: ModelCompletion
    provider: str
    model: str
    cost: Decimal


@dataclass(frozen=True, slots=True)
class ToolDescription:
    name: str
    description: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


def plain(value: Any) -> Any:
    """JSON from protobuf as the server's agents see it: integral numbers as ints."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _struct(value: Mapping[str, Any] | None) -> struct_pb2.Struct | None:
    if value is None:
        return None
    message = struct_pb2.Struct()
    message.update(dict(value))
    return message


def _struct_dict(message: struct_pb2.Struct) -> dict[str, Any]:
    result: dict[str, Any] = plain(json_format.MessageToDict(message))
    return result


def _usage(message: common_pb2.Usage) -> ModelUsage:
    return ModelUsage(
        message.input_tokens,
        message.output_tokens,
        message.cached_input_tokens,
        message.cache_write_tokens,
        message.reasoning_tokens,
        message.calls,
    )


def _request_message(request: Any) -> worker_service_pb2.CompletionRequest:
    """The plugin contract's CompletionRequest, read by attribute."""

    def tool_call(call: Any) -> worker_service_pb2.ToolCall:
        return worker_service_pb2.ToolCall(
            id=call.id, name=call.name, arguments=_struct(call.arguments)
        )

    def tool_spec(tool: Any) -> worker_service_pb2.ToolSpec:
        return worker_service_pb2.ToolSpec(
            name=tool.name, description=tool.description, parameters=_struct(tool.parameters)
        )

    message = worker_service_pb2.CompletionRequest(
        model=request.model,
        messages=[
            worker_service_pb2.ChatMessage(
                role=m.role,
                content=m.content,
                tool_calls=[tool_call(c) for c in getattr(m, "tool_calls", ())],
                tool_call_id=getattr(m, "tool_call_id", ""),
                name=getattr(m, "name", ""),
            )
            for m in request.messages
        ],
        options=_struct(getattr(request, "options", None) or {}),
        tools=[tool_spec(t) for t in getattr(request, "tools", ())],
        response_format=_struct(getattr(request, "response_format", None)),
        stream=bool(getattr(request, "stream", False)),
    )
    if getattr(request, "max_tokens", None) is not None:
        message.max_tokens = request.max_tokens
    if getattr(request, "temperature", None) is not None:
        message.temperature = request.temperature
    return message


def _money(message: common_pb2.Money) -> Decimal:
    return Decimal(message.units) + Decimal(message.nanos) / Decimal(1_000_000_000)


class ModelGateway:
    """ctx.llm on a worker: every call goes through the server's gate."""

    __slots__ = ("_raise", "_stub", "_token")

    def __init__(
        self,
        stub: worker_service_pb2_grpc.WorkerServiceAsyncStub,
        token: str,
        raiser: FailureRaiser,
    ) -> None:
        self._stub = stub
        self._token = token
        self._raise = raiser

    async def complete(self, provider: str, request: Any, *, fallbacks: Sequence[Any] = ()) -> Any:
        response = await self._stub.CallModel(
            worker_service_pb2.CallModelRequest(
                attempt_token=self._token,
                provider=provider,
                request=_request_message(request),
                fallbacks=[
                    worker_service_pb2.ModelTarget(provider=t.provider, model=t.model)
                    for t in fallbacks
                ],
            )
        )
        if response.HasField("failure"):
            failure = response.failure
            raise self._raise(failure.type, failure.message, failure.retryable)
        completion = response.completion
        return ModelResult(
            ModelCompletion(
                text=completion.text,
                usage=_usage(completion.usage),
                finish_reason=completion.finish_reason,
                model=completion.model,
                tool_calls=[
                    ModelToolCall(c.id, c.name, _struct_dict(c.arguments))
                    for c in completion.tool_calls
                ],
            ),
            response.provider,
            response.model,
            _money(response.cost),
        )


class WorkerStepContext:
    """The plugin contract's StepContext for one attempt run by a worker."""

    def __init__(
        self,
        task: worker_service_pb2.AttemptTask,
        stub: worker_service_pb2_grpc.WorkerServiceAsyncStub,
        report: Callable[[float, str], None],
        raiser: FailureRaiser = _default_raiser,
    ) -> None:
        self._task = task
        self._stub = stub
        self._report = report
        self._raise = raiser
        self._input = (
            plain(json_format.MessageToDict(task.input)) if task.HasField("input") else None
        )
        self._config = _struct_dict(task.config)
        self._llm = ModelGateway(stub, task.attempt_token, raiser)

    @property
    def run_id(self) -> str:
        return self._task.run.removeprefix("runs/")

    @property
    def step_id(self) -> str:
        return self._task.step_id

    @property
    def attempt(self) -> int:
        return self._task.attempt

    @property
    def item(self) -> int:
        """Fan-out item index or loop iteration; -1: none."""
        return self._task.item

    @property
    def traceparent(self) -> str:
        """The attempt's W3C trace context."""
        return self._task.traceparent

    @property
    def input(self) -> Any:
        return self._input

    @property
    def config(self) -> Mapping[str, Any]:
        return self._config

    @property
    def llm(self) -> ModelGateway:
        return self._llm

    @property
    def tools(self) -> Sequence[ToolDescription]:
        return [
            ToolDescription(t.name, t.description, _struct_dict(t.parameters))
            for t in self._task.tools
        ]

    async def call_tool(self, name: str, arguments: Mapping[str, Any]) -> Any:
        response = await self._stub.CallTool(
            worker_service_pb2.CallToolRequest(
                attempt_token=self._task.attempt_token, name=name, arguments=_struct(arguments)
            )
        )
        if response.HasField("failure"):
            failure = response.failure
            raise self._raise(failure.type, failure.message, failure.retryable)
        return plain(json_format.MessageToDict(response.output))

    def report(self, progress: float, message: str = "") -> None:
        self._report(progress, message)


def is_stale(error: grpc.aio.AioRpcError) -> bool:
    """A governed call refused because the attempt no longer runs."""
    return error.code() == grpc.StatusCode.FAILED_PRECONDITION
