"""WorkflowService: translation only."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import grpc

from podium.engine.estimates import Estimate
from podium.engine.validation import Plan, check_step_count
from podium.engine.workflows import WorkflowCatalog
from podium.server import requests, translate
from podium.server.caller import current_caller
from podium.server.status import invalid, unary
from podium.v1 import common_pb2, workflow_pb2, workflow_service_pb2, workflow_service_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
# Steps from which a definition is translated in a worker thread.
LARGE_SPEC = 500


class WorkflowService(workflow_service_pb2_grpc.WorkflowServiceServicer):
    def __init__(
        self,
        workflows: WorkflowCatalog,
        estimate: Callable[[str, Plan], Awaitable[Estimate]],
    ) -> None:
        self._workflows = workflows
        self._estimate = estimate

    @unary
    async def CreateWorkflow(
        self, request: workflow_service_pb2.CreateWorkflowRequest, context: Context
    ) -> workflow_service_pb2.CreateWorkflowResponse:
        spec = await _spec_aside(request.spec)
        # Kept as sent, so that GetWorkflow returns the definition unchanged (the domain spec
        # has its defaults filled in). Deterministic: equal definitions, equal bytes.
        applied = request.spec.SerializeToString(deterministic=True)
        workflow = await self._workflows.create(
            request.workflow_id, spec, applied, tenant=current_caller().tenant
        )
        return workflow_service_pb2.CreateWorkflowResponse(
            workflow=translate.workflow_to_proto(workflow)
        )

    @unary
    async def GetWorkflow(
        self, request: workflow_service_pb2.GetWorkflowRequest, context: Context
    ) -> workflow_service_pb2.GetWorkflowResponse:
        if request.version < 0:
            raise invalid("version", "must not be negative")
        workflow = await self._workflows.get(
            requests.workflow_id(request.name), request.version, tenant=current_caller().tenant
        )
        return workflow_service_pb2.GetWorkflowResponse(
            workflow=translate.workflow_to_proto(workflow)
        )

    @unary
    async def ListWorkflows(
        self, request: workflow_service_pb2.ListWorkflowsRequest, context: Context
    ) -> workflow_service_pb2.ListWorkflowsResponse:
        workflows, token = await self._workflows.list(
            request.page_size, request.page_token, tenant=current_caller().tenant
        )
        return workflow_service_pb2.ListWorkflowsResponse(
            workflows=[translate.workflow_to_proto(w) for w in workflows], next_page_token=token
        )

    @unary
    async def DeleteWorkflow(
        self, request: workflow_service_pb2.DeleteWorkflowRequest, context: Context
    ) -> workflow_service_pb2.DeleteWorkflowResponse:
        await self._workflows.delete(
            requests.workflow_id(request.name), tenant=current_caller().tenant
        )
        return workflow_service_pb2.DeleteWorkflowResponse()

    @unary
    async def ValidateWorkflow(
        self, request: workflow_service_pb2.ValidateWorkflowRequest, context: Context
    ) -> workflow_service_pb2.ValidateWorkflowResponse:
        plan = await self._workflows.validate_aside(await _spec_aside(request.spec))
        estimate = await self._estimate(request.workflow_id, plan)
        response = workflow_service_pb2.ValidateWorkflowResponse(
            critical_path=plan.critical_path, estimate=_estimate_to_proto(estimate)
        )
        # Built in place: a 10,000-step chain's levels as ExecutionLevel
        # messages passed to the constructor took 27 ms of the event loop
        # (each one built, then copied), in place 8 ms.
        add_level = response.levels.add
        for level in plan.levels:
            add_level().step_ids.extend(level)
        return response


async def _spec_aside(message: workflow_pb2.WorkflowSpec) -> Any:
    """The spec of a request; a large one translated in a worker thread (10,000
    steps take a fifth of a second of Python, which would stall the event loop;
    the thread hands the interpreter back to the loop every switch interval)."""
    check_step_count(len(message.steps))
    if len(message.steps) < LARGE_SPEC:
        return _spec(message)
    return await asyncio.to_thread(_spec, message)


def _spec(message: workflow_pb2.WorkflowSpec) -> Any:
    # Before translating: an oversized definition is refused for its count alone.
    check_step_count(len(message.steps))
    try:
        return translate.spec_from_proto(message)
    except (ValueError, OverflowError) as error:
        # pydantic's ValidationError is a ValueError; so is what protobuf
        # raises for a Timestamp or Duration out of its range (nanos -1).
        raise invalid("spec", str(error).splitlines()[0]) from None


_SOURCES = {
    "history": workflow_service_pb2.ESTIMATE_SOURCE_HISTORY,
    "price_table": workflow_service_pb2.ESTIMATE_SOURCE_PRICE_TABLE,
}


def _estimate_to_proto(estimate: Estimate) -> workflow_service_pb2.Estimate:
    def money(amount: Decimal | None) -> common_pb2.Money | None:
        return None if amount is None else translate.money(amount)

    return workflow_service_pb2.Estimate(
        source=_SOURCES[estimate.source],
        runs=estimate.runs,
        p50_duration=translate.duration(estimate.p50_duration),
        p95_duration=translate.duration(estimate.p95_duration),
        p50_cost=money(estimate.p50_cost),
        p95_cost=money(estimate.p95_cost),
        max_cost=money(estimate.max_cost),
        note=estimate.note,
    )
