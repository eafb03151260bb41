"""Hostile input gets a documented code with an ErrorInfo, never UNKNOWN or
INTERNAL, and a rejected write changes nothing: NaN and infinities in
Structs and doubles, deep nesting, a deeply nested page token, bytes that are
no protobuf at all."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from podium.server.status import streaming, unary
from podium.testing import (
    Stubs,
    create_workflow,
    echo_step,
    error_info,
    field_violations,
    make_spec,
)
from podium.v1 import (
    control_service_pb2,
    execution_service_pb2,
    workflow_service_pb2,
)


async def snapshot(stubs: Stubs) -> tuple[bytes, bytes, bytes]:
    """What a rejected write must leave unchanged."""
    workflows = await stubs.workflows.ListWorkflows(workflow_service_pb2.ListWorkflowsRequest())
    runs = await stubs.executions.ListRuns(execution_service_pb2.ListRunsRequest())
    quotas = await stubs.control.ListQuotas(control_service_pb2.ListQuotasRequest())
    return (
        workflows.SerializeToString(deterministic=True),
        runs.SerializeToString(deterministic=True),
        quotas.SerializeToString(deterministic=True),
    )


def nan_struct(value: float) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.fields["x"].number_value = value
    return message


def nest(into: struct_pb2.Struct, depth: int) -> None:
    """Fills `into` with `depth` levels of {"a": {"a": ... {"leaf": 1}}}."""
    for _ in range(depth):
        into = into.fields["a"].struct_value
    into.fields["leaf"].number_value = 1


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
async def test_a_non_finite_number_in_a_run_input_is_invalid(stubs: Stubs, value: float) -> None:
    await create_workflow(stubs, "hello", {"steps": [echo_step("greet")]})
    before = await snapshot(stubs)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.executions.StartRun(
            execution_service_pb2.StartRunRequest(
                workflow="workflows/hello", input=nan_struct(value)
            )
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).domain == "podium"
    assert [field for field, _ in field_violations(caught.value)] == ["input.x"]
    assert await snapshot(stubs) == before


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
async def test_a_non_finite_number_in_a_step_config_is_invalid(stubs: Stubs, value: float) -> None:
    spec = make_spec({"steps": [echo_step("greet")]})
    spec.steps[0].config.fields["x"].number_value = value
    before = await snapshot(stubs)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.workflows.CreateWorkflow(
            workflow_service_pb2.CreateWorkflowRequest(workflow_id="hello", spec=spec)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in field_violations(caught.value)] == ["spec.steps[0].config.x"]
    assert await snapshot(stubs) == before


async def test_a_deeply_nested_step_config_is_invalid(stubs: Stubs) -> None:
    request = workflow_service_pb2.CreateWorkflowRequest(
        workflow_id="hello", spec=make_spec({"steps": [echo_step("greet")]})
    )
    nest(request.spec.steps[0].config, 40)  # in place: a copy would re-parse it
    before = await snapshot(stubs)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.workflows.CreateWorkflow(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).domain == "podium"
    assert await snapshot(stubs) == before


async def test_a_deeply_nested_run_input_is_invalid(stubs: Stubs) -> None:
    await create_workflow(stubs, "hello", {"steps": [echo_step("greet")]})
    before = await snapshot(stubs)
    request = execution_service_pb2.StartRunRequest(workflow="workflows/hello")
    nest(request.input, 40)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.executions.StartRun(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).domain == "podium"
    assert await snapshot(stubs) == before


@pytest.mark.parametrize("field", ["limit", "burst"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
async def test_a_non_finite_quota_is_invalid(stubs: Stubs, field: str, value: float) -> None:
    before = await snapshot(stubs)
    quota = control_service_pb2.Quota(name="q", limit=60, burst=10)
    setattr(quota, field, value)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.control.UpdateQuota(control_service_pb2.UpdateQuotaRequest(quota=quota))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [name for name, _ in field_violations(caught.value)] == [f"quota.{field}"]
    assert await snapshot(stubs) == before


async def test_a_deeply_nested_page_token_is_invalid(stubs: Stubs) -> None:
    token = base64.urlsafe_b64encode(("[" * 100_000 + "]" * 100_000).encode()).decode()
    for call in (
        stubs.executions.ListRuns(execution_service_pb2.ListRunsRequest(page_token=token)),
        stubs.workflows.ListWorkflows(workflow_service_pb2.ListWorkflowsRequest(page_token=token)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [name for name, _ in field_violations(caught.value)] == ["page_token"]


@pytest.mark.parametrize(
    "method",
    [
        "/podium.v1.ExecutionService/StartRun",
        "/podium.v1.WorkflowService/CreateWorkflow",
        "/podium.v1.ControlService/UpdateQuota",
        "/podium.v1.ExecutionService/GetRun",
    ],
)
async def test_bytes_that_are_no_request_are_invalid(stubs: Stubs, method: str) -> None:
    await create_workflow(stubs, "hello", {"steps": [echo_step("greet")]})
    before = await snapshot(stubs)
    call = stubs.channel.unary_unary(
        method, request_serializer=lambda b: b, response_deserializer=lambda b: b
    )
    for garbage in (b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x08" + b"\xff" * 11):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(garbage)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, garbage
        assert error_info(caught.value).reason == "MALFORMED_REQUEST"
    assert await snapshot(stubs) == before


def test_the_token_is_json_nesting() -> None:
    # The page-token case above is only meaningful if the decoder would recurse.
    with pytest.raises(RecursionError):
        json.loads("[" * 100_000 + "]" * 100_000)


class Broken:
    """A handler with a bug: what the decorators answer for what no code maps."""

    @unary
    async def Fail(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        raise RuntimeError("a bug with a secret in its text")

    @streaming
    async def Stream(
        self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        yield b"first"
        raise RuntimeError("a bug with a secret in its text")


async def test_an_unexpected_error_is_internal_with_error_info_not_its_text() -> None:
    broken = Broken()
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Fail": grpc.unary_unary_rpc_method_handler(broken.Fail),
        "Stream": grpc.unary_stream_rpc_method_handler(broken.Stream),
    }
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Broken", handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            calls: list[Awaitable[Any]] = [
                channel.unary_unary("/test.Broken/Fail", _raw, _raw)(b""),
                _drain(channel.unary_stream("/test.Broken/Stream", _raw, _raw)(b"")),
            ]
            for call in calls:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await call
                assert caught.value.code() == grpc.StatusCode.INTERNAL
                assert error_info(caught.value).reason == "INTERNAL"
                assert "secret" not in (caught.value.details() or "")
    finally:
        await server.stop(None)


def _raw(data: bytes) -> bytes:
    return data


async def _drain(call: Any) -> None:
    async for _ in call:
        pass


async def test_a_request_with_very_many_problems_still_names_them_within_the_trailers(
    stubs: Stubs,
) -> None:
    # 300 steps with long, invalid ids: each is a violation. All of them in the
    # status would pass the client's 8 KiB trailer limit and turn the answer
    # into RESOURCE_EXHAUSTED; the first are shown and the rest counted.
    steps = [echo_step("X" * 500 + str(i)) for i in range(300)]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await create_workflow(stubs, "many-problems", {"steps": steps})
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(raised.value).reason == "INVALID_WORKFLOW"
    shown = field_violations(raised.value)
    assert 1 < len(shown) < 300
    assert shown[0][0] == "spec.steps[0].id" and len(shown[0][1]) <= 200
    assert shown[-1][1].endswith("more problems not shown")
