"""A workflow concurrency quota bounds its running runs: later runs stay
PENDING and start, first come first served, as earlier ones end."""

from __future__ import annotations

import asyncio
import itertools

import grpc

from podium.governance.policy import Policy
from podium.server.app import start_server
from podium.testing import (
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    get_run,
    start_run,
)
from podium.v1 import execution_service_pb2 as X
from podium.v1 import run_pb2 as R

POLICY = Policy.model_validate(
    {
        "quotas": [
            {"name": "one-slow", "scope": "workflow:slow", "dimension": "concurrency", "limit": 1}
        ]
    }
)


async def test_runs_beyond_the_limit_wait_pending_and_start_in_order(db_path: str) -> None:
    server = await start_server("127.0.0.1:0", db_path, policy=POLICY)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stubs: Stubs = Stubs.on(channel)
            await create_workflow(stubs, "slow", {"steps": [echo_step("a", delay_ms=200)]})
            first = await start_run(stubs, "slow")
            second = await start_run(stubs, "slow")
            third = await start_run(stubs, "slow")
            await asyncio.sleep(0.05)
            states = [(await get_run(stubs, r.name)).state for r in (first, second, third)]
            assert states == [R.RUN_STATE_RUNNING, R.RUN_STATE_PENDING, R.RUN_STATE_PENDING]
            await collect_events(stubs, third.name, timeout=10)
            runs = [await get_run(stubs, r.name) for r in (first, second, third)]
            assert [r.state for r in runs] == [R.RUN_STATE_SUCCEEDED] * 3
            # Never two at once: each started after the previous one ended.
            for earlier, later in itertools.pairwise(runs):
                assert earlier.end_time.ToNanoseconds() <= later.start_time.ToNanoseconds()
    finally:
        await server.stop(0.5)


async def test_a_waiting_run_can_be_cancelled_and_the_next_one_starts(db_path: str) -> None:
    server = await start_server("127.0.0.1:0", db_path, policy=POLICY)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stubs = Stubs.on(channel)
            await create_workflow(stubs, "slow", {"steps": [echo_step("a", delay_ms=200)]})
            first = await start_run(stubs, "slow")
            waiting = await start_run(stubs, "slow")
            last = await start_run(stubs, "slow")
            cancelled = (
                await stubs.executions.CancelRun(X.CancelRunRequest(name=waiting.name))
            ).run
            assert cancelled.state == R.RUN_STATE_CANCELLED
            await collect_events(stubs, last.name, timeout=10)
            assert (await get_run(stubs, first.name)).state == R.RUN_STATE_SUCCEEDED
            assert (await get_run(stubs, last.name)).state == R.RUN_STATE_SUCCEEDED
    finally:
        await server.stop(0.5)
