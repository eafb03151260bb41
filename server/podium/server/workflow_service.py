"""WorkflowService: translation only."""

from __future__ import annotations

from typing import Any

import grpc

from podium.engine.workflows import WorkflowCatalog
from podium.server import requests, translate
from podium.server.status import invalid, unary
from podium.v1 import workflow_pb2, workflow_service_pb2, workflow_service_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


class WorkflowService(workflow_service_pb2_grpc.WorkflowServiceServicer):
    def __init__(self, workflows: WorkflowCatalog) -> None:
        self._workflows = workflows

    @unary
    async def CreateWorkflow(
        self, request: workflow_service_pb2.CreateWorkflowRequest, context: Context
    ) -> workflow_service_pb2.CreateWorkflowResponse:
        spec = _spec(request.spec)
        workflow = await self._workflows.create(request.workflow_id, spec)
        return workflow_service_pb2.CreateWorkflowResponse(
            workflow=translate.workflow_to_proto(workflow)
        )

    @unary
    async def GetWorkflow(
        self, request: workflow_service_pb2.GetWorkflowRequest, context: Context
    ) -> workflow_service_pb2.GetWorkflowResponse:
        if request.version < 0:
            raise invalid("version", "must not be negative")
        workflow = await self._workflows.get(requests.workflow_id(request.name), request.version)
        return workflow_service_pb2.GetWorkflowResponse(
            workflow=translate.workflow_to_proto(workflow)
        )

    @unary
    async def ListWorkflows(
        self, request: workflow_service_pb2.ListWorkflowsRequest, context: Context
    ) -> workflow_service_pb2.ListWorkflowsResponse:
        workflows, token = await self._workflows.list(request.page_size, request.page_token)
        return workflow_service_pb2.ListWorkflowsResponse(
            workflows=[translate.workflow_to_proto(w) for w in workflows], next_page_token=token
        )

    @unary
    async def DeleteWorkflow(
        self, request: workflow_service_pb2.DeleteWorkflowRequest, context: Context
    ) -> workflow_service_pb2.DeleteWorkflowResponse:
        await self._workflows.delete(requests.workflow_id(request.name))
        return workflow_service_pb2.DeleteWorkflowResponse()

    @unary
    async def ValidateWorkflow(
        self, request: workflow_service_pb2.ValidateWorkflowRequest, context: Context
    ) -> workflow_service_pb2.ValidateWorkflowResponse:
        plan = self._workflows.validate(_spec(request.spec))
        return workflow_service_pb2.ValidateWorkflowResponse(
            levels=[workflow_pb2.ExecutionLevel(step_ids=level) for level in plan.levels],
            critical_path=plan.critical_path,
        )


def _spec(message: workflow_pb2.WorkflowSpec) -> Any:
    try:
        return translate.spec_from_proto(message)
    except (ValueError, OverflowError) as error:
        # pydantic's ValidationError is a ValueError; so is what protobuf
        # raises for a Timestamp or Duration out of its range (nanos -1).
        raise invalid("spec", str(error).splitlines()[0]) from None
