"""Drives a workload through a real Podium server in another process.

Wall time runs from the first StartRun to the last final event received by a
WatchRun subscriber, so it includes the durable StartRun, scheduling, agent
calls, persistence and event delivery over gRPC on loopback.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

from bench.measure import Measurement, repeat
from bench.workloads import StepDef, Workload
from podium.v1 import (
    event_pb2,
    execution_service_pb2,
    execution_service_pb2_grpc,
    progress_service_pb2,
    progress_service_pb2_grpc,
    workflow_service_pb2,
    workflow_service_pb2_grpc,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
FINAL_EVENTS = (
    event_pb2.RUN_EVENT_TYPE_RUN_SUCCEEDED,
    event_pb2.RUN_EVENT_TYPE_RUN_FAILED,
    event_pb2.RUN_EVENT_TYPE_RUN_CANCELLED,
)
STARTUP_TIMEOUT_S = 30.0


class BenchError(RuntimeError):
    """A run did not do what the benchmark asked: its figures would be meaningless."""


@dataclass
class ServerProcess:
    process: asyncio.subprocess.Process
    port: int

    async def stop(self) -> float:
        """Stops the server gracefully; returns its peak RSS in MB."""
        self.process.send_signal(signal.SIGTERM)
        out, _ = await self.process.communicate()
        if self.process.returncode != 0:
            raise BenchError(f"server exited with status {self.process.returncode}")
        return float(json.loads(out.decode().strip().splitlines()[-1])["peak_rss_mb"])


@asynccontextmanager
async def server_process(db_path: Path | None = None) -> AsyncIterator[ServerProcess]:
    """A fresh server with its own SQLite file (WAL), so that neither its peak
    RSS nor its database carries over from another workload; or, given
    `db_path`, a fresh process on that database (to restart on it)."""
    with tempfile.TemporaryDirectory(prefix="podium-bench-") as tmp:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.server_process",
            str(db_path or Path(tmp) / "podium.db"),
            cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), STARTUP_TIMEOUT_S)
            if not line:
                raise BenchError("server exited before announcing its port")
            yield ServerProcess(process, int(json.loads(line)["port"]))
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


def workflow_request(workflow_id: str, steps: Sequence[StepDef]) -> Any:
    step_dicts: list[dict[str, Any]] = []
    for step in steps:
        step_dict: dict[str, Any] = {"id": step.id, "agent": "echo"}
        if step.depends_on:
            step_dict["depends_on"] = list(step.depends_on)
        if step.delay_ms:
            step_dict["config"] = {"delay_ms": step.delay_ms}
        step_dicts.append(step_dict)
    body = {"workflow_id": workflow_id, "spec": {"steps": step_dicts}}
    return json_format.ParseDict(body, workflow_service_pb2.CreateWorkflowRequest())


class Driver:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.workflows = workflow_service_pb2_grpc.WorkflowServiceStub(channel)
        self.executions = execution_service_pb2_grpc.ExecutionServiceStub(channel)
        self.progress = progress_service_pb2_grpc.ProgressServiceStub(channel)

    async def create(self, workload: Workload) -> str:
        request = workflow_request(workload.name.lower(), workload.build())
        response = await self.workflows.CreateWorkflow(request)
        return str(response.workflow.name)

    async def run_once(self, workflow: str, workload: Workload) -> float:
        started = time.perf_counter()
        ends = await asyncio.gather(
            *(self._one_run(workflow, workload.steps_per_run) for _ in range(workload.runs))
        )
        return max(ends) - started

    async def _one_run(self, workflow: str, steps: int) -> float:
        """Starts a run and watches it; returns when its final event arrived."""
        request = execution_service_pb2.StartRunRequest(workflow=workflow)
        run = (await self.executions.StartRun(request)).run
        watch = progress_service_pb2.WatchRunRequest(run=run.name)
        succeeded_steps = 0
        async for response in self.progress.WatchRun(watch):
            for event in response.events:
                if event.type == event_pb2.RUN_EVENT_TYPE_STEP_SUCCEEDED:
                    succeeded_steps += 1
                elif event.type in FINAL_EVENTS:
                    received = time.perf_counter()
                    if event.type != event_pb2.RUN_EVENT_TYPE_RUN_SUCCEEDED:
                        raise BenchError(f"{run.name} ended {event.run_state}: {event.failure}")
                    if succeeded_steps != steps:
                        raise BenchError(f"{run.name}: {succeeded_steps} of {steps} steps ran")
                    return received
        raise BenchError(f"{run.name}: the stream ended before the run's final event")


async def run_fan_out_once(driver: Driver, workflow: str, workload: Workload) -> float:
    """One run of a single for_each step over the workload's items; the wall
    time until its final event arrived."""
    total = workload.steps_per_run
    started = time.perf_counter()
    request = execution_service_pb2.StartRunRequest(workflow=workflow)
    request.input.update({"items": list(range(total))})
    run = (await driver.executions.StartRun(request)).run
    watch = progress_service_pb2.WatchRunRequest(run=run.name)
    succeeded_items = 0
    async for response in driver.progress.WatchRun(watch):
        for event in response.events:
            if event.type == event_pb2.RUN_EVENT_TYPE_ITEM_SUCCEEDED:
                succeeded_items += 1
            elif event.type in FINAL_EVENTS:
                received = time.perf_counter()
                if event.type != event_pb2.RUN_EVENT_TYPE_RUN_SUCCEEDED:
                    raise BenchError(f"{run.name} ended {event.run_state}: {event.failure}")
                if succeeded_items != total:
                    raise BenchError(f"{run.name}: {succeeded_items} of {total} items ran")
                output = json_format.MessageToDict(event.output)["each"]
                if len(output) != total or output[-1] != {"item": total - 1}:
                    raise BenchError(f"{run.name}: wrong fan-out output")
                return received - started
    raise BenchError(f"{run.name}: the stream ended before the run's final event")


def fan_out_request(workflow_id: str, max_concurrency: int) -> Any:
    each: dict[str, Any] = {
        "id": "each",
        "agent": "echo",
        "for_each": {"items": "input.items", "max_concurrency": max_concurrency},
        "input": {"item": "item"},
    }
    body = {"workflow_id": workflow_id, "spec": {"steps": [each]}}
    return json_format.ParseDict(body, workflow_service_pb2.CreateWorkflowRequest())


async def measure_fan_out(workload: Workload) -> Measurement:
    async with server_process() as server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            driver = Driver(channel)
            request = fan_out_request(workload.name.lower(), workload.max_concurrency)
            workflow = (await driver.workflows.CreateWorkflow(request)).workflow.name
            walls = await repeat(workload, lambda: run_fan_out_once(driver, workflow, workload))
        return Measurement(walls, await server.stop())


async def measure(workload: Workload) -> Measurement:
    if workload.kind == "fan_out":
        return await measure_fan_out(workload)
    if workload.kind == "recovery":
        from bench.recovery import measure_recovery

        return await measure_recovery(workload)
    if workload.kind == "gate":
        from bench.gate import measure_gate

        return await measure_gate(workload)
    if workload.kind == "budget_race":
        from bench.budget_race import measure_budget_race

        return await measure_budget_race(workload)
    async with server_process() as server:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            driver = Driver(channel)
            workflow = await driver.create(workload)
            walls = await repeat(workload, lambda: driver.run_once(workflow, workload))
        return Measurement(walls, await server.stop())
