"""ProgressService: translation only; the watching logic is engine/progress.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

import grpc

from podium.core.states import EventType, RunState
from podium.engine import progress
from podium.engine.engine import Engine
from podium.server import requests
from podium.server.caller import current_caller
from podium.server.event_encoding import EventEncoder, passthrough
from podium.server.status import invalid, streaming
from podium.v1 import progress_service_pb2, progress_service_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


class ProgressService(progress_service_pb2_grpc.ProgressServiceServicer):
    """Yields pre-encoded responses (bytes, see event_encoding): register it with
    `add_progress_service`, whose serializers send them as they are."""

    def __init__(self, engine: Engine, encoder: EventEncoder | None = None) -> None:
        self._engine = engine
        self.encoder = encoder or EventEncoder()
        # Subscribers catching up from the same position share one read of the log.
        self._log = progress.SharedReads(engine)

    @streaming
    async def WatchRun(
        self, request: progress_service_pb2.WatchRunRequest, context: Context
    ) -> AsyncIterator[progress_service_pb2.WatchRunResponse]:
        run_id = requests.run_id(request.run, "run")
        if request.after_sequence < 0:
            raise invalid("after_sequence", "must not be negative")
        await self._engine.check_tenant(run_id, current_caller().tenant)
        async for batch in progress.watch_run(
            self._engine.hub,
            self._log,
            run_id,
            request.after_sequence,
            deltas=request.include_output_deltas,
        ):
            if isinstance(batch, progress.DeltaBatch):
                yield _deltas_response(batch)  # type: ignore[misc]
                continue
            async for response in self.encoder.responses(batch):
                yield response  # type: ignore[misc]

    @streaming
    async def WatchRuns(
        self, request: progress_service_pb2.WatchRunsRequest, context: Context
    ) -> AsyncIterator[progress_service_pb2.WatchRunsResponse]:
        workflows = [
            requests.workflow_id(w, f"workflows[{i}]") for i, w in enumerate(request.workflows)
        ]
        states = [_enum(RunState, v, f"run_states[{i}]") for i, v in enumerate(request.run_states)]
        types = [
            _enum(EventType, v, f"event_types[{i}]") for i, v in enumerate(request.event_types)
        ]
        async for batch in progress.watch_runs(
            self._engine.hub, current_caller().tenant, workflows, states, types
        ):
            async for response in self.encoder.responses(batch):
                yield response  # type: ignore[misc]


def _deltas_response(deltas: progress.DeltaBatch) -> bytes:
    # Encoded here, per subscriber: deltas are small and live only, never shared.
    return progress_service_pb2.WatchRunResponse(
        output_deltas=[
            progress_service_pb2.OutputDelta(
                step_id=delta.step_id,
                item=delta.item,
                attempt=delta.attempt,
                index=delta.index,
                text=delta.text,
            )
            for delta in deltas
        ]
    ).SerializeToString()


def add_progress_service(servicer: ProgressService, server: grpc.aio.Server) -> None:
    """As the generated add_ProgressServiceServicer_to_server, with serializers
    that send the servicer's pre-encoded responses as they are."""
    pb = progress_service_pb2
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "WatchRun": grpc.unary_stream_rpc_method_handler(
            servicer.WatchRun,
            request_deserializer=pb.WatchRunRequest.FromString,
            response_serializer=passthrough(pb.WatchRunResponse.SerializeToString),
        ),
        "WatchRuns": grpc.unary_stream_rpc_method_handler(
            servicer.WatchRuns,
            request_deserializer=pb.WatchRunsRequest.FromString,
            response_serializer=passthrough(pb.WatchRunsResponse.SerializeToString),
        ),
    }
    service = pb.DESCRIPTOR.services_by_name["ProgressService"].full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    server.add_registered_method_handlers(service, handlers)


E = TypeVar("E", RunState, EventType)


def _enum(kind: type[E], number: int, field: str) -> E:
    try:
        return kind(number)
    except ValueError:
        raise invalid(field, f"unknown value {number}") from None
