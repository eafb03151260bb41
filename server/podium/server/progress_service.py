"""ProgressService: translation only; the watching logic is engine/progress.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

import grpc

from podium.core.states import EventType, RunState
from podium.engine import progress
from podium.engine.engine import Engine
from podium.server import requests, translate
from podium.server.status import invalid, streaming
from podium.v1 import progress_service_pb2, progress_service_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


class ProgressService(progress_service_pb2_grpc.ProgressServiceServicer):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @streaming
    async def WatchRun(
        self, request: progress_service_pb2.WatchRunRequest, context: Context
    ) -> AsyncIterator[progress_service_pb2.WatchRunResponse]:
        run_id = requests.run_id(request.run, "run")
        if request.after_sequence < 0:
            raise invalid("after_sequence", "must not be negative")
        async for batch in progress.watch_run(
            self._engine.hub, self._engine, run_id, request.after_sequence
        ):
            yield progress_service_pb2.WatchRunResponse(
                events=[translate.event_to_proto(e) for e in batch]
            )

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
        async for batch in progress.watch_runs(self._engine.hub, workflows, states, types):
            yield progress_service_pb2.WatchRunsResponse(
                events=[translate.event_to_proto(e) for e in batch]
            )


E = TypeVar("E", RunState, EventType)


def _enum(kind: type[E], number: int, field: str) -> E:
    try:
        return kind(number)
    except ValueError:
        raise invalid(field, f"unknown value {number}") from None
