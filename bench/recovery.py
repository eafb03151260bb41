"""W5: a server restarted over many unfinished runs.

A first server starts the runs (a durable wait until a shared instant, then a
no-op step) and is stopped gracefully once they all wait. It runs in-process
on a clock that never moves: however long starting a thousand runs takes on
a busy machine, no wait can fall due before the stop. Once that instant has
passed for real, a fresh `podium serve` process opens the same database; from
the moment it is spawned we measure

  startup:  until grpc health says SERVING (it serves while it recovers),
  resumed:  until every run's first post-restart event happened (server time),
  finished: until every run's final event reached its WatchRun subscriber
            (the row's wall time),

and, meanwhile, how long health checks and GetRun take while recovery runs
(sent by a prober process of its own, bench/health_probe.py, started before
the server).
"""

from __future__ import annotations

import asyncio
import datetime
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

from bench.health_probe import Prober
from bench.measure import Measurement
from bench.server import FINAL_EVENTS, BenchError, server_process
from bench.workloads import Workload
from podium.testing import ManualClock, Stubs, eventually, serving
from podium.v1 import (
    event_pb2,
    execution_service_pb2,
    progress_service_pb2,
    run_pb2,
    workflow_service_pb2,
)

# How far ahead of the first server's (frozen) clock the runs' wait falls due:
# already past when the second server starts, so that it resumes them all.
WAIT_S = 1.0
START_CONCURRENCY = 50
EVENTS_BEFORE_STOP = 3  # RUN_CREATED, RUN_STARTED, STEP_WAITING
RESUMED_TARGET_S = 2.0


def _iso(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.isoformat().replace("+00:00", "Z")


def _workflow_request(workflow_id: str) -> Any:
    steps = [
        {"id": "pause", "wait": {"time_expression": "input.until"}},
        {"id": "after", "agent": "echo", "depends_on": ["pause"]},
    ]
    body = {"workflow_id": workflow_id, "spec": {"steps": steps}}
    return json_format.ParseDict(body, workflow_service_pb2.CreateWorkflowRequest())


async def _start_runs(stubs: Stubs, workflow: str, count: int, until: str) -> list[str]:
    gate = asyncio.Semaphore(START_CONCURRENCY)

    async def one() -> str:
        async with gate:
            request = execution_service_pb2.StartRunRequest(workflow=workflow)
            request.input.update({"until": until})
            return str((await stubs.executions.StartRun(request)).run.name)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def _all_waiting(stubs: Stubs, names: Sequence[str]) -> None:
    """Until every run recorded its STEP_WAITING. On the first server's frozen
    clock nothing can happen after it, which is checked too."""
    pending = list(names)

    async def waiting() -> bool:
        still: list[str] = []
        for name in pending:
            request = execution_service_pb2.GetRunRequest(name=name)
            run = (await stubs.executions.GetRun(request)).run
            if run.last_sequence > EVENTS_BEFORE_STOP or run.state != run_pb2.RUN_STATE_RUNNING:
                raise BenchError(f"{name} went past its wait before the restart")
            if run.last_sequence < EVENTS_BEFORE_STOP:
                still.append(name)
        pending[:] = still
        return not pending

    await eventually(waiting, what=f"{len(names)} runs waiting")


async def _prepare(db: Path, workload: Workload, due: float) -> list[str]:
    """The database the restarted server finds: every run waiting until `due`."""
    async with serving(str(db), clock=ManualClock(due - WAIT_S)) as (server, stubs):
        request = _workflow_request(workload.name.lower())
        workflow = (await stubs.workflows.CreateWorkflow(request)).workflow.name
        names = await _start_runs(stubs, workflow, workload.runs, _iso(due))
        await _all_waiting(stubs, names)
        await server.stop(1.0)
    return names


class _Resumption:
    """One run watched from its last pre-restart event to its final one."""

    def __init__(self, stubs: Stubs, name: str) -> None:
        self.name = name
        self.first_event_time = 0.0  # server time of the first post-restart event
        self.finished_at = 0.0  # client time.time() when the final event arrived
        self._stubs = stubs

    async def watch(self) -> None:
        request = progress_service_pb2.WatchRunRequest(
            run=self.name, after_sequence=EVENTS_BEFORE_STOP
        )
        async for response in self._stubs.progress.WatchRun(request):
            for event in response.events:
                if not self.first_event_time:
                    if event.sequence != EVENTS_BEFORE_STOP + 1:
                        raise BenchError(f"{self.name}: gap before sequence {event.sequence}")
                    self.first_event_time = event.time.ToNanoseconds() / 1e9
                if event.type in FINAL_EVENTS:
                    self.finished_at = time.time()
                    if event.type != event_pb2.RUN_EVENT_TYPE_RUN_SUCCEEDED:
                        raise BenchError(f"{self.name} ended {event.run_state}: {event.failure}")
                    return
        raise BenchError(f"{self.name}: the stream ended before the run's final event")


def _p(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure_recovery(workload: Workload) -> Measurement:
    with tempfile.TemporaryDirectory(prefix="podium-bench-") as tmp:
        db = Path(tmp) / "podium.db"
        due = time.time() + WAIT_S
        names = await _prepare(db, workload, due)
        await asyncio.sleep(max(0.0, due - time.time()) + 0.05)

        # Started before the server, so that it probes from the first moments
        # of recovery; from a process of its own, so that the thousand streams
        # this one reads do not count as the server's latency.
        prober = await Prober.start()
        try:
            async with server_process(db) as second:
                announced = time.time()
                spawned = second.spawned_at
                await prober.aim(second.address, names)
                async with grpc.aio.insecure_channel(second.address) as channel:
                    stubs = Stubs.on(channel)
                    resumptions = [_Resumption(stubs, name) for name in names]
                    await asyncio.gather(*(r.watch() for r in resumptions))
                latencies = await prober.stop()
                peak_rss_mb = await second.stop()
        finally:
            await prober.close()
    get_ms = [seconds * 1000 for seconds in latencies["get_run"]]
    health_ms = [seconds * 1000 for seconds in latencies["health"]]

    startup_s = announced - spawned
    resumed_s = max(r.first_event_time for r in resumptions) - spawned
    finished_s = max(r.finished_at for r in resumptions) - spawned
    name = workload.name
    notes = (
        f"{name} after the restart: serving {startup_s:.2f} s, all {workload.runs} resumed "
        f"{resumed_s:.2f} s, all finished {finished_s:.2f} s",
        f"{name} while recovering: GetRun p50 {statistics.median(get_ms):.1f} / p99 "
        f"{_p(get_ms, 0.99):.1f} / max {max(get_ms):.1f} ms ({len(get_ms)} calls)",
        f"{name} while recovering: health check p50 {statistics.median(health_ms):.1f} / "
        f"max {max(health_ms):.1f} ms",
    )
    # Issue 17's target: every run resumed within 2 s of the process's spawn.
    verdict = ("all resumed ≤2 s", resumed_s <= RESUMED_TARGET_S)
    return Measurement([finished_s], peak_rss_mb, notes, verdict)
