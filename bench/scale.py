"""Scale rows, each against a `podium serve` process of its own:

idle:       the server's resident memory once it serves, before any call
            but a health check (what provider SDKs and other eager imports
            cost every server);
live_runs:  its resident memory holding `runs` live runs, each waiting for
            a human approval (live, in memory, but costing no CPU while they wait);
sustained:  5-step diamonds started and watched to their end by 50 client
            tasks in a loop, for SUSTAINED["seconds"] (bench/run.py
            --sustained-seconds): completed runs per second and the p99 of
            one run's latency (StartRun to its final event).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format

from bench.measure import Measurement
from bench.podium_run import workflow_request
from bench.server import FINAL_EVENTS, BenchError, server_process
from bench.workloads import Workload
from podium.testing import Stubs
from podium.v1 import (
    event_pb2,
    execution_service_pb2,
    progress_service_pb2,
    run_pb2,
    workflow_service_pb2,
)

IDLE_TARGET_MB = 80.0
LIVE_TARGET_MB = 1024.0
START_CONCURRENCY = 50
# What bench/run.py --sustained-seconds sets.
SUSTAINED: dict[str, float] = {"seconds": 60.0}
SUSTAINED_CLIENTS = 50
# How long the idle server is left alone before its memory is read: what
# start-up deferred (a first collection, threads settling) has happened by then.
IDLE_SETTLE_S = 1.0


def rss_mb_of(pid: int) -> float:
    """A process's current resident set size (VmRSS), in MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise BenchError(f"no VmRSS for process {pid}")


async def measure_idle(workload: Workload) -> Measurement:
    async with server_process() as server:
        startup_s = time.time() - server.spawned_at
        await asyncio.sleep(IDLE_SETTLE_S)
        rss = rss_mb_of(server.process.pid)
        peak = await server.stop()
    verdict = (f"≤{IDLE_TARGET_MB:g} MB idle", rss <= IDLE_TARGET_MB)
    notes = (f"{workload.name}: idle RSS {rss:.1f} MB, serving {startup_s:.2f} s after spawn",)
    return Measurement([startup_s], peak, notes, verdict)


def _approval_request(workflow_id: str) -> Any:
    steps = [
        {"id": "gate", "approval": {"prompt": "go on?"}},
        {"id": "after", "agent": "echo", "depends_on": ["gate"]},
    ]
    body = {"workflow_id": workflow_id, "spec": {"steps": steps}}
    return json_format.ParseDict(body, workflow_service_pb2.CreateWorkflowRequest())


async def _count_waiting(stubs: Stubs) -> int:
    count, token = 0, ""
    while True:
        request = execution_service_pb2.ListRunsRequest(page_size=1000, page_token=token)
        request.states.append(run_pb2.RUN_STATE_WAITING_APPROVAL)
        reply = await stubs.executions.ListRuns(request)
        count += len(reply.runs)
        token = reply.next_page_token
        if not token:
            return count


async def measure_live_runs(workload: Workload) -> Measurement:
    async with server_process() as server:
        async with server.channel() as channel:
            stubs = Stubs.on(channel)
            request = _approval_request(workload.name.lower())
            workflow = (await stubs.workflows.CreateWorkflow(request)).workflow.name
            before = rss_mb_of(server.process.pid)
            gate = asyncio.Semaphore(START_CONCURRENCY)

            async def one() -> None:
                async with gate:
                    start = execution_service_pb2.StartRunRequest(workflow=workflow)
                    await stubs.executions.StartRun(start)

            started = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(workload.runs)))
            while (waiting := await _count_waiting(stubs)) < workload.runs:
                await asyncio.sleep(0.2)
            wall = time.perf_counter() - started
            if waiting != workload.runs:
                raise BenchError(f"{waiting} runs wait, {workload.runs} were started")
            await asyncio.sleep(IDLE_SETTLE_S)
            rss = rss_mb_of(server.process.pid)
        peak = await server.stop()
    per_run_kb = (rss - before) * 1024 / workload.runs
    verdict = (f"≤{LIVE_TARGET_MB:g} MB", rss <= LIVE_TARGET_MB)
    notes = (
        f"{workload.name}: {workload.runs} live runs waiting for approval: RSS {rss:.1f} MB "
        f"({before:.1f} MB before them, {per_run_kb:.1f} KB per run), all started and "
        f"waiting after {wall:.1f} s",
    )
    return Measurement([wall], peak, notes, verdict)


async def _client(
    stubs: Stubs, workflow: str, steps: int, until: float, latencies: list[float]
) -> None:
    while time.perf_counter() < until:
        started = time.perf_counter()
        request = execution_service_pb2.StartRunRequest(workflow=workflow)
        run = (await stubs.executions.StartRun(request)).run
        watch = progress_service_pb2.WatchRunRequest(run=run.name)
        succeeded = 0
        async for response in stubs.progress.WatchRun(watch):
            for event in response.events:
                if event.type == event_pb2.RUN_EVENT_TYPE_STEP_SUCCEEDED:
                    succeeded += 1
                elif event.type in FINAL_EVENTS:
                    if event.type != event_pb2.RUN_EVENT_TYPE_RUN_SUCCEEDED:
                        raise BenchError(f"{run.name} ended {event.run_state}: {event.failure}")
                    if succeeded != steps:
                        raise BenchError(f"{run.name}: {succeeded} of {steps} steps ran")
                    latencies.append(time.perf_counter() - started)


@dataclass(frozen=True)
class Sustained:
    """What SUSTAINED_CLIENTS clients got done in SUSTAINED["seconds"]."""

    runs: int
    steps: int
    wall_s: float
    latencies_s: list[float]

    @property
    def per_second(self) -> float:
        return self.runs / self.wall_s

    def describe(self) -> str:
        ordered = sorted(self.latencies_s)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000
        return (
            f"{self.per_second:.0f} runs/s ({self.runs} runs of {self.steps} steps in "
            f"{self.wall_s:.1f} s, {SUSTAINED_CLIENTS} clients); latency p50 "
            f"{statistics.median(ordered) * 1000:.0f} / p99 {p99:.0f} ms"
        )


async def run_sustained(stubs: Stubs, workflow: str, steps: int) -> Sustained:
    """SUSTAINED_CLIENTS clients, each starting and watching one run of
    `workflow` at a time, for SUSTAINED["seconds"] (after a warm-up)."""
    warm: list[float] = []  # connections, caches and pages, not timed
    await _client(stubs, workflow, steps, time.perf_counter() + 0.5, warm)
    latencies: list[float] = []
    started = time.perf_counter()
    until = started + SUSTAINED["seconds"]
    await asyncio.gather(
        *(_client(stubs, workflow, steps, until, latencies) for _ in range(SUSTAINED_CLIENTS))
    )
    wall = time.perf_counter() - started
    if not latencies:
        raise BenchError("no run finished")
    return Sustained(len(latencies), steps, wall, latencies)


async def measure_sustained(workload: Workload) -> Measurement:
    async with server_process() as server:
        async with server.channel() as channel:
            stubs = Stubs.on(channel)
            request = workflow_request(workload.name.lower(), workload.build())
            workflow = (await stubs.workflows.CreateWorkflow(request)).workflow.name
            sustained = await run_sustained(stubs, workflow, workload.steps_per_run)
        peak = await server.stop()
    notes = (f"{workload.name}: {sustained.describe()}",)
    verdict = ("≥1500 runs/s", sustained.per_second >= 1500)
    return Measurement([sustained.wall_s], peak, notes, verdict)
