"""The gRPC floor: what the benchmark's own client pattern costs against a
server that does nothing but answer it.

A bare grpc.aio server (uvloop, as `podium serve`; no engine, no store, no
interceptors) in a process of its own answers StartRun with the reply a new
run of the workload gets (the run and its steps, PENDING) and WatchRun with
all of a finished run's events (RUN_STARTED, each step's STEP_STARTED and
STEP_SUCCEEDED with its output, RUN_SUCCEEDED with the run's output) in one
message, at once. Every answer is encoded once, before the first call. The
driver is the one that measures Podium (bench/podium_run.py, bench/scale.py):
the same calls, the same checks of every run's output, from the same process.

No server answering these calls can do less (Podium sends the events of a
run in several messages, as they are committed), so a workload's figure here
is a lower bound for any Python gRPC server on this machine; Podium's row is
measured against it. Run as `python -m bench.grpc_floor W4` to serve one
workload's answers: prints the port, serves until stdin closes.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2

from bench.measure import REPO_ROOT, Measurement, peak_rss_mb_of, repeat
from bench.podium_run import run_dag_once
from bench.scale import run_sustained
from bench.server import BenchError
from bench.workloads import StepDef, Workload, by_name, expected_outputs, step_output
from podium.server.loop import run as run_loop
from podium.testing import Stubs
from podium.v1 import event_pb2, execution_service_pb2, progress_service_pb2, run_pb2

START_RUN = "/podium.v1.ExecutionService/StartRun"
WATCH_RUN = "/podium.v1.ProgressService/WatchRun"
RUN_NAME = "runs/floor"
WORKFLOW_NAME = "workflows/floor"


def replies(steps: Sequence[StepDef]) -> tuple[bytes, bytes]:
    """The StartRun reply and the one WatchRun message a run of `steps` gets."""
    run = run_pb2.Run(name=RUN_NAME, workflow=WORKFLOW_NAME, state=run_pb2.RUN_STATE_PENDING)
    for step in steps:
        run.steps.add(step_id=step.id, agent="echo", state=run_pb2.STEP_STATE_PENDING)
    started = execution_service_pb2.StartRunResponse(run=run)

    events: list[event_pb2.RunEvent] = []

    def add(kind: event_pb2.RunEventType.ValueType, **fields: Any) -> event_pb2.RunEvent:
        event = event_pb2.RunEvent(
            run=RUN_NAME, workflow=WORKFLOW_NAME, sequence=len(events) + 1, type=kind, **fields
        )
        event.time.GetCurrentTime()
        events.append(event)
        return event

    add(event_pb2.RUN_EVENT_TYPE_RUN_STARTED, run_state=run_pb2.RUN_STATE_RUNNING)
    outputs: dict[str, dict[str, int]] = {}
    for step in _in_dependency_order(steps):
        outputs[step.id] = step_output(step, outputs)
        running = run_pb2.STEP_STATE_RUNNING
        add(event_pb2.RUN_EVENT_TYPE_STEP_STARTED, step_id=step.id, step_state=running)
        succeeded = add(
            event_pb2.RUN_EVENT_TYPE_STEP_SUCCEEDED,
            step_id=step.id,
            step_state=run_pb2.STEP_STATE_SUCCEEDED,
        )
        succeeded.output.CopyFrom(_value(outputs[step.id]))
    final = add(event_pb2.RUN_EVENT_TYPE_RUN_SUCCEEDED, run_state=run_pb2.RUN_STATE_SUCCEEDED)
    final.output.CopyFrom(_value(expected_outputs(steps)))
    watched = progress_service_pb2.WatchRunResponse(events=events)
    return started.SerializeToString(), watched.SerializeToString()


def _in_dependency_order(steps: Sequence[StepDef]) -> list[StepDef]:
    done: set[str] = set()
    ordered: list[StepDef] = []
    pending = list(steps)
    while pending:
        ready = [step for step in pending if all(dep in done for dep in step.depends_on)]
        if not ready:
            raise BenchError("the workload's steps have a cycle")
        for step in ready:
            ordered.append(step)
            done.add(step.id)
            pending.remove(step)
    return ordered


def _value(data: Any) -> struct_pb2.Value:
    return json_format.ParseDict(data, struct_pb2.Value())


async def serve(workload: Workload) -> None:
    started, watched = replies(workload.build())

    async def start_run(request: bytes, context: Any) -> bytes:
        return started

    async def watch_run(request: bytes, context: Any) -> AsyncIterator[bytes]:
        yield watched

    def as_is(data: bytes) -> bytes:
        return data

    handlers = {
        START_RUN: grpc.unary_unary_rpc_method_handler(
            start_run, request_deserializer=as_is, response_serializer=as_is
        ),
        WATCH_RUN: grpc.unary_stream_rpc_method_handler(
            watch_run, request_deserializer=as_is, response_serializer=as_is
        ),
    }
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_ByPath(handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    # Until the driver closes our stdin (or is gone); then the process ends
    # without a GOAWAY, which the driver's grpc would log, its channel closed.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    os._exit(0)


class _ByPath(grpc.GenericRpcHandler):
    def __init__(self, handlers: dict[str, Any]) -> None:
        self._handlers = handlers

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        return self._handlers.get(handler_call_details.method)


@asynccontextmanager
async def floor_server(workload: Workload) -> AsyncIterator[tuple[str, int]]:
    """The floor server of `workload` in a process of its own: (address, pid)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.grpc_floor",
        workload.name,
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        if not line.strip():
            raise BenchError(f"the gRPC floor server of {workload.name} did not start")
        yield f"127.0.0.1:{int(line)}", process.pid
    finally:
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            process.kill()
            await process.wait()


async def measure_grpc_floor(workload: Workload) -> Measurement:
    """The workload's client pattern against the floor server: DAG workloads as
    bench/podium_run.py drives them, the sustained one as bench/scale.py does."""
    async with (
        floor_server(workload) as (address, pid),
        grpc.aio.insecure_channel(address) as channel,
    ):
        stubs = Stubs.on(channel)
        if workload.kind == "sustained":
            sustained = await run_sustained(stubs, WORKFLOW_NAME, workload.steps_per_run)
            note = f"{workload.name} gRPC floor: {sustained.describe()}"
            return Measurement([sustained.wall_s], peak_rss_mb_of(pid), notes=(note,))
        walls = await repeat(workload, lambda: run_dag_once(stubs, WORKFLOW_NAME, workload))
        rss = peak_rss_mb_of(pid)
    wall = statistics.median(walls)
    note = f"{workload.name} gRPC floor: {workload.runs / wall:.1f} runs/s"
    return Measurement(walls, rss, notes=(note,))


if __name__ == "__main__":
    run_loop(serve(by_name(sys.argv[1:2])[0]))
