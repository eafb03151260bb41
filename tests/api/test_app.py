"""What podium.server.app wires around the services: grpc health (SERVING, then
NOT_SERVING on shutdown), reflection, and the retention pruner start_server
starts and stops."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from podium.server.app import PodiumServer, start_server
from podium.testing import (
    Stubs,
)


@pytest.mark.parametrize("service", ["", "podium.v1.ExecutionService", "podium.v1.WorkflowService"])
async def test_health_is_serving(stubs: Stubs, service: str) -> None:
    health = stubs.health
    response = await health.Check(health_pb2.HealthCheckRequest(service=service))
    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_unknown_service_is_not_found(stubs: Stubs) -> None:
    health = stubs.health
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await health.Check(health_pb2.HealthCheckRequest(service="podium.v1.Nope"))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_the_podium_services(stubs: Stubs) -> None:
    reflection: Any = reflection_pb2_grpc.ServerReflectionStub(stubs.channel)  # type: ignore[arg-type]

    async def ask(
        request: reflection_pb2.ServerReflectionRequest,
    ) -> reflection_pb2.ServerReflectionResponse:
        call = reflection.ServerReflectionInfo(iter([request]))
        responses: list[reflection_pb2.ServerReflectionResponse] = [r async for r in call]
        assert len(responses) == 1
        return responses[0]

    listed = await ask(reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in listed.list_services_response.service}
    assert {
        "podium.v1.WorkflowService",
        "podium.v1.ExecutionService",
        "podium.v1.ProgressService",
        "podium.v1.ControlService",
        "grpc.health.v1.Health",
    } <= names

    described = await ask(
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="podium.v1.ExecutionService")
    )
    assert described.file_descriptor_response.file_descriptor_proto


async def test_stopped_server_reports_not_serving(server: PodiumServer, stubs: Stubs) -> None:
    health = stubs.health
    await server.health.enter_graceful_shutdown()
    response = await health.Check(health_pb2.HealthCheckRequest(service=""))
    assert response.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_start_server_with_retention_starts_and_stops_a_pruner(db_path: str) -> None:
    served = await start_server("127.0.0.1:0", db_path, retention_seconds=600)
    try:
        assert served.pruner is not None
        assert (served.pruner.max_age, served.pruner.interval) == (600, 60)
    finally:
        await served.stop(0.5)
    without = await start_server("127.0.0.1:0", db_path, retention_seconds=0)
    try:
        assert without.pruner is None
    finally:
        await without.stop(0.5)
    with pytest.raises(ValueError):
        await start_server("127.0.0.1:0", db_path, retention_seconds=-1)
