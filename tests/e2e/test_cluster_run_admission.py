"""Run admission across three `podium serve --cluster` processes on one database
(docs/cluster.md, "Run admission"): a workflow-scope concurrency quota and a
workflow's run_concurrency bound the runs running at once across the cluster,
where each server alone would admit up to the limit.

What ran when comes from the records: each run's step attempts (GetRun: start
and end times; an attempt interrupted by a kill -9 ended, at the latest, when
the test saw its server dead) and the `logged` agent's own log (one line per
execution, site/podium_e2e_faults.py). The agent holds its step until the test
creates the release file, so the first runs certainly hold their places while
the others are looked at.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import grpc

from podium.testing import (
    Cluster,
    Stubs,
    collect_events,
    create_workflow,
    eventually,
    get_run,
    start_run,
)
from podium.v1 import execution_service_pb2, run_pb2

R = run_pb2
QUOTA_LIMIT = 2
RUNS = 12
POLICY = (
    "quotas:\n"
    "  - {name: two-runs, scope: 'workflow:quota', dimension: concurrency,"
    f" limit: {QUOTA_LIMIT}}}\n"
    "  - {name: one-run, scope: 'workflow:single', dimension: concurrency, limit: 1}\n"
)


def logged(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    config = {"log": str(tmp_path / "executions"), "release": str(tmp_path / "release")}
    return {"steps": [{"id": "work", "agent": "logged", "config": config}], **extra}


def executions(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "executions"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def most_at_once(intervals: Iterable[tuple[float, float]]) -> int:
    """The most intervals open at one instant; one that ends when another
    starts does not overlap it."""
    spans = list(intervals)
    edges = sorted([(end, 0) for _, end in spans] + [(start, 1) for start, _ in spans])
    running = most = 0
    for _, opens in edges:
        running += 1 if opens else -1
        most = max(most, running)
    return most


def attempt_times(run: run_pb2.Run, dead_by: float | None = None) -> list[tuple[float, float]]:
    """The run's attempts as (start, end) wall times; an interrupted attempt's
    agent ran at most until `dead_by` (its server was killed), whatever its
    recorded end (written when a survivor resumed the run)."""
    times = []
    for step in run.steps:
        for attempt in step.attempts:
            start = attempt.start_time.ToNanoseconds() / 1e9
            end = attempt.end_time.ToNanoseconds() / 1e9
            if attempt.state == R.ATTEMPT_STATE_INTERRUPTED and dead_by is not None:
                end = min(end, dead_by)
            times.append((start, end))
    return times


async def states(stubs: Stubs, runs: Iterable[run_pb2.Run]) -> list[int]:
    return [(await get_run(stubs, run.name)).state for run in runs]


async def finished(stubs: Stubs, runs: list[run_pb2.Run]) -> list[run_pb2.Run]:
    await asyncio.gather(*(collect_events(stubs, run.name, timeout=120) for run in runs))
    return [await get_run(stubs, run.name) for run in runs]


def start_three(cluster: Cluster, env: dict[str, str], tmp_path: Path) -> list[Any]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    return [
        cluster.start(name, env=env, args=("--policy", str(policy)))
        for name in ("one", "two", "three")
    ]


async def test_run_limits_hold_across_three_servers(
    cluster: Cluster, hold_env: dict[str, str], tmp_path: Path
) -> None:
    servers = start_three(cluster, hold_env, tmp_path)
    channels = [grpc.aio.insecure_channel(server.address) for server in servers]
    try:
        stubs = [Stubs.on(channel) for channel in channels]
        await create_workflow(stubs[0], "quota", logged(tmp_path))
        await create_workflow(
            stubs[0],
            "keyed",
            logged(tmp_path, runConcurrency={"key": "input.customer", "maxRuns": 1}),
        )
        # Spread over the servers: each alone would run QUOTA_LIMIT of `quota`
        # and one run per customer at once.
        quota = [await start_run(stubs[i % 3], "quota") for i in range(RUNS)]
        keyed = [
            await start_run(stubs[i % 3], "keyed", {"customer": "ab"[i % 2]}) for i in range(RUNS)
        ]
        # The first runs hold their places (their agents wait for the release).
        await eventually(
            lambda: len(executions(tmp_path)) >= QUOTA_LIMIT + 2,
            what="the limits' first runs started",
        )
        # Then the others are PENDING: visible as waiting, on every server.
        looked = await states(stubs[1], [*quota, *keyed])
        assert looked.count(R.RUN_STATE_RUNNING) == QUOTA_LIMIT + 2, looked
        assert looked.count(R.RUN_STATE_PENDING) == 2 * RUNS - QUOTA_LIMIT - 2, looked
        (tmp_path / "release").touch()
        quota_runs = await finished(stubs[2], quota)
        keyed_runs = await finished(stubs[0], keyed)
    finally:
        for channel in channels:
            await channel.close()

    assert [r.state for r in [*quota_runs, *keyed_runs]] == [R.RUN_STATE_SUCCEEDED] * 2 * RUNS
    # Each run's step ran once, by the agent's own log.
    ran = [line["run"] for line in executions(tmp_path)]
    assert sorted(ran) == sorted(r.name.removeprefix("runs/") for r in [*quota, *keyed])
    assert most_at_once(t for r in quota_runs for t in attempt_times(r)) == QUOTA_LIMIT
    for customer in "ab":
        runs = [r for r in keyed_runs if r.input["customer"] == customer]
        assert most_at_once(t for r in runs for t in attempt_times(r)) == 1


async def test_a_run_waiting_for_its_shared_lease_can_be_cancelled(
    cluster: Cluster, hold_env: dict[str, str], tmp_path: Path
) -> None:
    servers = start_three(cluster, hold_env, tmp_path)
    channels = [grpc.aio.insecure_channel(server.address) for server in servers]
    try:
        one, two, three = (Stubs.on(channel) for channel in channels)
        await create_workflow(one, "single", logged(tmp_path))
        holder = await start_run(one, "single")
        await eventually(lambda: len(executions(tmp_path)) == 1, what="the first run started")
        # Owned by `two`, which runs nothing of `single`: it waits for the shared lease.
        waiting = await start_run(two, "single")
        assert (await get_run(three, waiting.name)).state == R.RUN_STATE_PENDING
        # Cancelled through a third server (a command to its owner).
        cancelled = await three.executions.CancelRun(
            execution_service_pb2.CancelRunRequest(name=waiting.name)
        )
        assert cancelled.run.state == R.RUN_STATE_CANCELLED
        later = await start_run(three, "single")
        (tmp_path / "release").touch()
        # The cancelled run held no place: the one after it runs (limit 1).
        runs = await finished(one, [holder, later])
        gone = await get_run(one, waiting.name)
    finally:
        for channel in channels:
            await channel.close()

    assert [r.state for r in runs] == [R.RUN_STATE_SUCCEEDED] * 2
    assert gone.state == R.RUN_STATE_CANCELLED
    assert [len(step.attempts) for step in gone.steps] == [0]
    assert [line["run"] for line in executions(tmp_path)] == [
        r.name.removeprefix("runs/") for r in (holder, later)
    ]
    assert most_at_once(t for r in runs for t in attempt_times(r)) == 1


async def test_a_killed_server_s_runs_are_taken_over_within_the_limit(
    cluster: Cluster, hold_env: dict[str, str], tmp_path: Path
) -> None:
    servers = start_three(cluster, hold_env, tmp_path)
    channels = [grpc.aio.insecure_channel(server.address) for server in servers]
    try:
        one, two, three = (Stubs.on(channel) for channel in channels)
        await create_workflow(one, "quota", logged(tmp_path))
        held = [await start_run(one, "quota") for _ in range(QUOTA_LIMIT)]
        await eventually(
            lambda: len(executions(tmp_path)) == QUOTA_LIMIT, what="`one`'s runs started"
        )
        waiting = [await start_run(stubs, "quota") for stubs in (two, three, two, three)]
        assert await states(two, waiting) == [R.RUN_STATE_PENDING] * len(waiting)
        servers[0].kill()
        dead_by = time.time()
        # Once `one`'s lease expires its places free: two of the waiting runs
        # start, and its own runs, taken over, wait for places like any other.
        await eventually(
            lambda: len(executions(tmp_path)) == 2 * QUOTA_LIMIT,
            what="runs started after the kill",
        )
        (tmp_path / "release").touch()
        runs = await finished(two, [*held, *waiting])
    finally:
        for channel in channels:
            await channel.close()

    assert [r.state for r in runs] == [R.RUN_STATE_SUCCEEDED] * len(runs)
    assert most_at_once(t for r in runs for t in attempt_times(r, dead_by)) == QUOTA_LIMIT
    # `one`'s runs: interrupted by the kill, then run again by a survivor.
    for run in runs[:QUOTA_LIMIT]:
        assert [a.state for a in run.steps[0].attempts] == [
            R.ATTEMPT_STATE_INTERRUPTED,
            R.ATTEMPT_STATE_SUCCEEDED,
        ]
    ran = [line["run"] for line in executions(tmp_path)]
    assert len(ran) == len(runs) + QUOTA_LIMIT
