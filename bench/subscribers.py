"""W11 and W12: what a subscriber sees.

W11: how soon the first event reaches a subscriber that calls WatchRun right
after StartRun returned (one run at a time, each a one-step run): the p99 over
the runs, against the 2 ms rule. Printed beside it, its floor: the round trip
of a bare health check on the same channel, made right before each StartRun
(what any call costs on this machine at that moment).

W12: the W2 chain watched by 100 subscribers that call WatchRun right after
StartRun returned, against the same chain watched by one: when the last
subscriber has the final event, relative to the lone subscriber's (median of
each): at most +20 %.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from grpc_health.v1 import health_pb2

from bench.measure import Measurement
from bench.podium_run import workflow_request
from bench.server import FINAL_EVENTS, BenchError, server_process
from bench.workloads import Workload, chain
from podium.testing import Stubs
from podium.v1 import execution_service_pb2, progress_service_pb2

MAX_FIRST_EVENT_P99_MS = 2.0
MAX_EXTRA_FOR_MANY = 0.20
W12_CHAIN = 200


async def _first_event_ms(stubs: Stubs, workflow: str, round_trips: list[float]) -> float:
    asked = time.perf_counter()
    await stubs.health.Check(health_pb2.HealthCheckRequest())
    round_trips.append((time.perf_counter() - asked) * 1000)
    run = (
        await stubs.executions.StartRun(execution_service_pb2.StartRunRequest(workflow=workflow))
    ).run
    returned = time.perf_counter()
    call = stubs.progress.WatchRun(progress_service_pb2.WatchRunRequest(run=run.name))
    first: float | None = None
    async for response in call:
        if first is None and response.events:
            first = time.perf_counter()
        if any(event.type in FINAL_EVENTS for event in response.events):
            break
    if first is None:
        raise BenchError(f"{run.name}: no event")
    return (first - returned) * 1000


async def measure_first_event(workload: Workload) -> Measurement:
    async with server_process() as server:
        async with server.channel() as channel:
            stubs = Stubs.on(channel)
            request = workflow_request(workload.name.lower(), workload.build())
            workflow = (await stubs.workflows.CreateWorkflow(request)).workflow.name
            round_trips: list[float] = []
            for _ in range(20):  # warm-up
                await _first_event_ms(stubs, workflow, round_trips)
            round_trips.clear()
            latencies = sorted(
                [await _first_event_ms(stubs, workflow, round_trips) for _ in range(workload.runs)]
            )
        rss = await server.stop()
    p50, p99 = _p50_p99(latencies)
    floor_p50, floor_p99 = _p50_p99(sorted(round_trips))
    notes = (
        f"W11 first event after StartRun returned: p50 {p50:.2f} ms, p99 {p99:.2f} ms; "
        f"floor (a health check's round trip just before): p50 {floor_p50:.2f} ms, "
        f"p99 {floor_p99:.2f} ms",
    )
    verdict = (f"p99 <= {MAX_FIRST_EVENT_P99_MS:g} ms", p99 <= MAX_FIRST_EVENT_P99_MS)
    return Measurement([p99 / 1000], rss, notes=notes, verdict=verdict)


def _p50_p99(ordered: list[float]) -> tuple[float, float]:
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def _last_subscriber_s(stubs: Stubs, workflow: str, subscribers: int) -> float:
    started = time.perf_counter()
    run = (
        await stubs.executions.StartRun(execution_service_pb2.StartRunRequest(workflow=workflow))
    ).run

    async def watch() -> float:
        call = stubs.progress.WatchRun(progress_service_pb2.WatchRunRequest(run=run.name))
        async for response in call:
            if any(event.type in FINAL_EVENTS for event in response.events):
                return time.perf_counter()
        raise BenchError(f"{run.name}: the stream ended before the run's final event")

    ends = await asyncio.gather(*(watch() for _ in range(subscribers)))
    return max(ends) - started


async def measure_many_subscribers(workload: Workload) -> Measurement:
    async with server_process() as server:
        async with server.channel() as channel:
            stubs = Stubs.on(channel)
            request = workflow_request(workload.name.lower(), chain(W12_CHAIN))
            workflow = (await stubs.workflows.CreateWorkflow(request)).workflow.name
            await _last_subscriber_s(stubs, workflow, workload.runs)  # warm-up
            one: list[float] = []
            many: list[float] = []
            for _ in range(workload.repetitions):  # interleaved
                one.append(await _last_subscriber_s(stubs, workflow, 1))
                many.append(await _last_subscriber_s(stubs, workflow, workload.runs))
        rss = await server.stop()
    alone, watched = statistics.median(one), statistics.median(many)
    extra = watched / alone - 1
    notes = (
        f"W12 {W12_CHAIN}-chain, 1 subscriber: {alone * 1000:.1f} ms; {workload.runs} "
        f"subscribers, the last one: {watched * 1000:.1f} ms ({extra:+.0%})",
    )
    verdict = (
        f"<= +{MAX_EXTRA_FOR_MANY:.0%} for the last of {workload.runs}",
        extra <= MAX_EXTRA_FOR_MANY,
    )
    return Measurement(many, rss, notes=notes, verdict=verdict)
