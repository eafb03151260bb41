"""W11 and W12: what a subscriber sees.

W11: how soon the first event reaches a subscriber that calls WatchRun right
after StartRun returned (one run at a time, each a one-step run): the p99 over
the runs, against the 2 ms rule.

W12: the W2 chain watched by 100 subscribers that call WatchRun right after
StartRun returned, against the same chain watched by one: when the last
subscriber has the final event, relative to the lone subscriber's (median of
each): at most +20 %.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from bench.measure import Measurement
from bench.podium_run import workflow_request
from bench.server import FINAL_EVENTS, BenchError, server_process
from bench.workloads import Workload, chain
from podium.testing import Stubs
from podium.v1 import execution_service_pb2, progress_service_pb2

MAX_FIRST_EVENT_P99_MS = 2.0
MAX_EXTRA_FOR_MANY = 0.20
W12_CHAIN = 200


async def _first_event_ms(stubs: Stubs, workflow: str) -> float:
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
            for _ in range(20):  # warm-up
                await _first_event_ms(stubs, workflow)
            latencies = sorted(
                [await _first_event_ms(stubs, workflow) for _ in range(workload.runs)]
            )
        rss = await server.stop()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    notes = (f"W11 first event after StartRun returned: p50 {p50:.2f} ms, p99 {p99:.2f} ms",)
    verdict = (f"p99 <= {MAX_FIRST_EVENT_P99_MS:g} ms", p99 <= MAX_FIRST_EVENT_P99_MS)
    return Measurement([p99 / 1000], rss, notes=notes, verdict=verdict)


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
