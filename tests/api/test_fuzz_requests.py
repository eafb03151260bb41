"""Every RPC's request, built field by field by hypothesis (NaN, infinities,
huge and negative numbers, unknown enum values, nested Structs, odd names),
answers OK or a documented code with an ErrorInfo: never UNKNOWN or INTERNAL,
and a rejected request leaves the server's state as it was."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor, struct_pb2
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podium.testing import Stubs, create_workflow, echo_step, error_info
from podium.v1 import (
    control_service_pb2,
    execution_service_pb2,
    progress_service_pb2,
    worker_service_pb2,
    workflow_service_pb2,
)

FD = descriptor.FieldDescriptor
DOCUMENTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE,
}
# A watch of an existing run waits for more events: the deadline ends it.
WATCH_DEADLINE = 0.5
MAX_DEPTH = 4
NAMES = st.sampled_from(
    ["", "hello", "workflows/hello", "runs/", "runs/x", "workflows/", "a" * 300, "ümlaut", "\x00"]
)
NUMBERS = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**60), 2**60).map(float)


def methods() -> Iterator[tuple[str, str, type[Message], bool]]:
    modules = (workflow_service_pb2, execution_service_pb2, progress_service_pb2)
    for module in (*modules, control_service_pb2, worker_service_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                if method.client_streaming:
                    continue  # a worker's session: tests/api/test_workers.py
                request = getattr(module, method.input_type.name)
                streaming = method.server_streaming
                yield service.name, method.name, request, streaming


METHODS = sorted(methods(), key=lambda m: (m[0], m[1]))
STUB_ATTRIBUTE = {
    "WorkflowService": "workflows",
    "ExecutionService": "executions",
    "ProgressService": "progress",
    "ControlService": "control",
    "WorkerService": "workers",
}


def json_values(depth: int) -> st.SearchStrategy[Any]:
    leaves = st.none() | st.booleans() | NUMBERS | NAMES
    if depth >= MAX_DEPTH:
        return leaves
    inner = json_values(depth + 1)
    return leaves | st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=3)


def fill(data: st.DataObject, message: Message, depth: int = 0) -> None:
    """Sets a random subset of `message`'s fields to random values."""
    if isinstance(message, struct_pb2.Struct):
        message.update(data.draw(st.dictionaries(NAMES, json_values(depth), max_size=3)))
        return
    for field in message.DESCRIPTOR.fields:
        if not data.draw(st.booleans()):
            continue
        if field.type == FD.TYPE_MESSAGE:
            if depth >= MAX_DEPTH:
                continue
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                _fill_map(data, message, field, depth)
            elif field.is_repeated:
                for _ in range(data.draw(st.integers(0, 3))):
                    fill(data, getattr(message, field.name).add(), depth + 1)
            else:
                fill(data, getattr(message, field.name), depth + 1)
            continue
        values = scalar(field)
        if field.is_repeated:
            getattr(message, field.name).extend(data.draw(st.lists(values, max_size=3)))
        else:
            setattr(message, field.name, data.draw(values))


def _fill_map(data: st.DataObject, message: Message, field: Any, depth: int) -> None:
    key_field = field.message_type.fields_by_name["key"]
    value_field = field.message_type.fields_by_name["value"]
    target = getattr(message, field.name)
    for _ in range(data.draw(st.integers(0, 3))):
        key = data.draw(scalar(key_field))
        if value_field.type == FD.TYPE_MESSAGE:
            fill(data, target[key], depth + 1)
        else:
            target[key] = data.draw(scalar(value_field))


def scalar(field: Any) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return NUMBERS if kind == FD.TYPE_DOUBLE else st.floats(width=32)
    if kind == FD.TYPE_BOOL:
        return st.booleans()
    if kind == FD.TYPE_STRING:
        return NAMES | st.text(max_size=12)
    if kind == FD.TYPE_BYTES:
        return st.binary(max_size=12)
    if kind == FD.TYPE_ENUM:
        return st.integers(-2, 12)
    if kind in (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32):
        return st.integers(-(2**31), 2**31 - 1)
    if kind in (FD.TYPE_UINT32, FD.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if kind in (FD.TYPE_UINT64, FD.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    return st.integers(-(2**63), 2**63 - 1)


async def snapshot(stubs: Stubs) -> tuple[bytes, ...]:
    requests = (
        stubs.workflows.ListWorkflows(workflow_service_pb2.ListWorkflowsRequest(page_size=1000)),
        stubs.executions.ListRuns(execution_service_pb2.ListRunsRequest(page_size=1000)),
        stubs.control.ListQuotas(control_service_pb2.ListQuotasRequest()),
        stubs.control.ListBudgets(control_service_pb2.ListBudgetsRequest()),
    )
    return tuple([(await r).SerializeToString(deterministic=True) for r in requests])


async def call(stubs: Stubs, service: str, method: str, request: Message, streaming: bool) -> Any:
    """The call's status code, and its error if it failed."""
    stub = getattr(getattr(stubs, STUB_ATTRIBUTE[service]), method)
    try:
        if streaming:
            async for _ in stub(request, timeout=WATCH_DEADLINE):
                pass
        else:
            await stub(request)
    except grpc.aio.AioRpcError as error:
        if streaming and error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return grpc.StatusCode.OK, None
        return error.code(), error
    return grpc.StatusCode.OK, None


@pytest.mark.parametrize(
    ("service", "method", "request_type", "streaming"),
    METHODS,
    ids=[f"{m[0]}.{m[1]}" for m in METHODS],
)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_every_request_gets_a_documented_code(
    stubs: Stubs,
    service: str,
    method: str,
    request_type: type[Message],
    streaming: bool,
    data: st.DataObject,
) -> None:
    await create_workflow(stubs, "hello", {"steps": [echo_step("greet")]})
    request = request_type()
    fill(data, request)
    before = await snapshot(stubs)
    code, error = await call(stubs, service, method, request, streaming)
    assert code in DOCUMENTED, f"{code} for {request}: {error and error.details()}"
    if error is not None:
        assert error_info(error).domain == "podium", request
        assert await snapshot(stubs) == before, f"rejected {code} yet changed state: {request}"
