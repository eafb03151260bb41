"""PodiumError (podium.client.errors): the server's rich status (reason,
domain, field violations) decoded by both clients from a fake server
answering like Podium, a plain status without details, an unreachable
server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from podium.client import (
    AsyncClient,
    Client,
    PodiumError,
)
from podium.testing import HANG_TIMEOUT
from podium.v1 import workflow_service_pb2, workflow_service_pb2_grpc


class _RejectingWorkflows(workflow_service_pb2_grpc.WorkflowServiceServicer):
    """Answers every ValidateWorkflow the way the server rejects a bad definition."""

    async def ValidateWorkflow(
        self,
        request: workflow_service_pb2.ValidateWorkflowRequest,
        context: grpc.aio.ServicerContext[
            workflow_service_pb2.ValidateWorkflowRequest,
            workflow_service_pb2.ValidateWorkflowResponse,
        ],
    ) -> workflow_service_pb2.ValidateWorkflowResponse:
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason="INVALID_WORKFLOW", domain="podium"))
        bad = any_pb2.Any()
        bad.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field="spec.steps[2].depends_on", description="unknown step 'x'"
                    ),
                    error_details_pb2.BadRequest.FieldViolation(
                        field="spec.steps[1].agent", description="unknown agent 'nope'"
                    ),
                ]
            )
        )
        status = status_pb2.Status(
            code=code_pb2.INVALID_ARGUMENT, message="invalid workflow", details=[info, bad]
        )
        rich = rpc_status.to_status(status)
        await context.abort(rich.code, rich.details, trailing_metadata=rich.trailing_metadata)


@pytest.fixture
async def rejecting_server() -> AsyncIterator[str]:
    server = grpc.aio.server()
    # The .pyi marks every RPC abstract; at run time the base answers UNIMPLEMENTED.
    servicer = _RejectingWorkflows()  # type: ignore[abstract]
    workflow_service_pb2_grpc.add_WorkflowServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(grace=None)


DEFINITION = {"workflow_id": "erp", "spec": {"steps": [{"id": "a", "agent": "nope"}]}}


def _assert_rich_error(error: PodiumError) -> None:
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_WORKFLOW"
    assert error.domain == "podium"
    assert error.message == "invalid workflow"
    assert error.field_violations == [
        ("spec.steps[2].depends_on", "unknown step 'x'"),
        ("spec.steps[1].agent", "unknown agent 'nope'"),
    ]
    assert str(error) == (
        "INVALID_ARGUMENT [INVALID_WORKFLOW] spec.steps[2].depends_on: unknown step 'x'; "
        "spec.steps[1].agent: unknown agent 'nope'"
    )
    assert not error.unreachable


async def test_async_client_decodes_rich_status(rejecting_server: str) -> None:
    async with AsyncClient(rejecting_server) as client:
        with pytest.raises(PodiumError) as caught:
            await client.validate_workflow(DEFINITION)
    _assert_rich_error(caught.value)


async def test_sync_client_decodes_rich_status(rejecting_server: str) -> None:
    def validate() -> None:
        with Client(rejecting_server) as client:
            client.validate_workflow(DEFINITION)

    # The blocking client runs in a thread so the aio server keeps this loop.
    with pytest.raises(PodiumError) as caught:
        await asyncio.to_thread(validate)
    _assert_rich_error(caught.value)


async def test_plain_status_without_details(rejecting_server: str) -> None:
    async with AsyncClient(rejecting_server) as client:
        with pytest.raises(PodiumError) as caught:
            await client.get_workflow("erp")  # not implemented by the servicer
    error = caught.value
    assert error.code == grpc.StatusCode.UNIMPLEMENTED
    assert error.reason == ""
    assert error.field_violations == []
    assert str(error).startswith("UNIMPLEMENTED ")


def test_unreachable_server_is_unavailable() -> None:
    with (
        Client("127.0.0.1:1", timeout=HANG_TIMEOUT) as client,
        pytest.raises(PodiumError) as caught,
    ):
        client.get_run("abc")
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert caught.value.unreachable
