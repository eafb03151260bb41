"""Typed stubs of every Podium service on one gRPC aio channel.

One channel for all of them is what a real client does (one HTTP/2
connection), and closing it is all the cleanup a test needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc

from podium.v1 import (
    control_service_pb2_grpc,
    execution_service_pb2_grpc,
    identity_service_pb2_grpc,
    progress_service_pb2_grpc,
    schedule_service_pb2_grpc,
    worker_service_pb2_grpc,
    workflow_service_pb2_grpc,
)

__all__ = ["Stubs"]


@dataclass(frozen=True)
class Stubs:
    """The services of one server, as the generated aio stubs."""

    channel: grpc.aio.Channel
    workflows: workflow_service_pb2_grpc.WorkflowServiceAsyncStub
    executions: execution_service_pb2_grpc.ExecutionServiceAsyncStub
    progress: progress_service_pb2_grpc.ProgressServiceAsyncStub
    control: control_service_pb2_grpc.ControlServiceAsyncStub
    workers: worker_service_pb2_grpc.WorkerServiceAsyncStub
    identity: identity_service_pb2_grpc.IdentityServiceAsyncStub
    schedules: schedule_service_pb2_grpc.ScheduleServiceAsyncStub
    # grpc.health.v1.Health; typed Any because its type stubs know no aio methods.
    health: Any

    @classmethod
    def on(cls, channel: grpc.aio.Channel) -> Stubs:
        """Stubs on an open channel (the caller keeps closing it)."""
        return cls(
            channel=channel,
            workflows=workflow_service_pb2_grpc.WorkflowServiceStub(channel),
            executions=execution_service_pb2_grpc.ExecutionServiceStub(channel),
            progress=progress_service_pb2_grpc.ProgressServiceStub(channel),
            control=control_service_pb2_grpc.ControlServiceStub(channel),
            workers=worker_service_pb2_grpc.WorkerServiceStub(channel),
            identity=identity_service_pb2_grpc.IdentityServiceStub(channel),
            schedules=schedule_service_pb2_grpc.ScheduleServiceStub(channel),
            health=health_pb2_grpc.HealthStub(channel),
        )
