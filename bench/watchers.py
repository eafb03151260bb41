"""W9: a 6,000-item fan-out watched by 200 WatchRun subscribers, half of
which never read their stream.

Two servers, each in a process of its own: one runs the fan-out unwatched, the
other with the subscribers attached. Reported: each server's peak RSS, the
fan-out's own wall time (its step's start_time to end_time, as the server
recorded them: the readers' decoding in this process does not count; it starts
after a wait of GATE_S, by when every subscriber is attached), the time until
every reader had the final event, and the ratios: medians over ROUNDS pairs of
runs, peak RSS the highest of each kind. The rule: subscriber memory
does not grow with the run (at most +150 MB here) and the watched run takes at
most 1.5x the unwatched one.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import grpc
from google.protobuf import json_format

from bench.measure import Measurement
from bench.podium_run import fan_out_request
from bench.server import FINAL_EVENTS, BenchError, server_process
from bench.workloads import Workload
from podium.testing import Stubs
from podium.v1 import execution_service_pb2, progress_service_pb2

MAX_EXTRA_RSS_MB = 150.0
MAX_SLOWDOWN = 1.5
# Pairs of runs (unwatched, watched) whose medians are compared.
ROUNDS = 5
# The fan-out starts after this wait, so that every subscriber is attached by then.
GATE_S = 3.0


def _workflow_request(workload: Workload) -> Any:
    """A wait of GATE_S, then the fan-out (bench.podium_run's) over `input.items`."""
    request = fan_out_request(workload.name.lower(), workload.max_concurrency)
    spec = json_format.MessageToDict(request.spec)
    spec["steps"][0]["dependsOn"] = ["gate"]
    spec["steps"].insert(0, {"id": "gate", "wait": {"duration": f"{GATE_S}s"}})
    request.spec.Clear()
    json_format.ParseDict(spec, request.spec)
    return request


async def _read_to_end(stubs: Stubs, run: str) -> float:
    """Reads the whole stream; when the final event arrived."""
    call = stubs.progress.WatchRun(progress_service_pb2.WatchRunRequest(run=run))
    async for response in call:
        for event in response.events:
            if event.type in FINAL_EVENTS:
                return time.perf_counter()
    raise BenchError(f"{run}: the stream ended before the run's final event")


async def _one_run(workload: Workload, subscribers: int) -> tuple[float, float, float]:
    """(run wall time, all readers done, server peak RSS MB) of one fan-out with
    `subscribers` watchers."""
    async with server_process() as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stubs = Stubs.on(channel)
            request = _workflow_request(workload)
            workflow = (await stubs.workflows.CreateWorkflow(request)).workflow.name
            start = execution_service_pb2.StartRunRequest(workflow=workflow)
            start.input.update({"items": list(range(workload.steps_per_run))})
            started = time.perf_counter()
            started_ns = time.time_ns()
            run = (await stubs.executions.StartRun(start)).run.name
            # Subscribed, never read: the server must not buffer the run for them.
            idle: list[Any] = [
                stubs.progress.WatchRun(progress_service_pb2.WatchRunRequest(run=run))
                for _ in range(subscribers // 2)
            ]
            await asyncio.gather(*(call.initial_metadata() for call in idle))
            readers = [
                asyncio.create_task(_read_to_end(stubs, run))
                for _ in range(subscribers - subscribers // 2)
            ]
            ends = [await _read_to_end(stubs, run)]
            ends += await asyncio.gather(*readers)
            delivered = max(ends) - started
            for call in idle:
                call.cancel()
            got = await stubs.executions.GetRun(execution_service_pb2.GetRunRequest(name=run))
            [each] = [step for step in got.run.steps if step.step_id == "each"]
            if each.start_time.ToNanoseconds() - started_ns < GATE_S * 1e9 * 0.5:
                raise BenchError("the fan-out started before the subscribers were attached")
            wall = (each.end_time.ToNanoseconds() - each.start_time.ToNanoseconds()) / 1e9
        return wall, delivered, await server.stop()


async def measure_watchers(workload: Workload) -> Measurement:
    """ROUNDS pairs, unwatched and watched in alternating order: one run's wall
    time swings by half with the disk's fsync latency (0.54-0.90 s unwatched on
    this machine), so one pair decides nothing; medians are compared."""
    subscribers = workload.runs
    alone: list[tuple[float, float, float]] = []
    watched: list[tuple[float, float, float]] = []
    for round_ in range(ROUNDS):
        for count in (0, subscribers) if round_ % 2 == 0 else (subscribers, 0):
            (watched if count else alone).append(await _one_run(workload, count))
    alone_wall = statistics.median(wall for wall, _, _ in alone)
    watched_wall = statistics.median(wall for wall, _, _ in watched)
    delivered = statistics.median(done for _, done, _ in watched)
    alone_rss = max(rss for _, _, rss in alone)
    watched_rss = max(rss for _, _, rss in watched)
    extra_rss = watched_rss - alone_rss
    slowdown = watched_wall / alone_wall
    notes = (
        f"W9 unwatched: median {alone_wall:.2f} s ({_spread(alone)}), peak RSS {alone_rss:.0f} MB",
        f"W9 {subscribers} subscribers ({subscribers // 2} never reading): median "
        f"{watched_wall:.2f} s ({_spread(watched)}; {slowdown:.2f}x), peak RSS "
        f"{watched_rss:.0f} MB (+{extra_rss:.0f} MB); every reader had the final event "
        f"after {delivered:.2f} s (median); {ROUNDS} rounds",
    )
    met = extra_rss <= MAX_EXTRA_RSS_MB and slowdown <= MAX_SLOWDOWN
    verdict = (f"<= +{MAX_EXTRA_RSS_MB:.0f} MB and <= {MAX_SLOWDOWN}x unwatched", met)
    return Measurement([watched_wall], watched_rss, notes=notes, verdict=verdict)


def _spread(runs: list[tuple[float, float, float]]) -> str:
    walls = [wall for wall, _, _ in runs]
    return f"{min(walls):.2f}-{max(walls):.2f} s"


if __name__ == "__main__":
    from bench.workloads import by_name

    measurement = asyncio.run(measure_watchers(by_name(["W9"])[0]))
    print("\n".join(measurement.notes), measurement.verdict)
