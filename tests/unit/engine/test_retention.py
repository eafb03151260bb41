"""The age-based Pruner (podium.engine.retention) on a server's engine: what
one pass deletes and keeps, passes at every interval on its clock, and the
default interval."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import grpc
import pytest

from podium.core.model import RerunBatchRecord, RunRecord
from podium.core.states import RunState
from podium.engine.retention import Pruner, default_interval
from podium.server.app import PodiumServer
from podium.store.sqlite.store import SqliteStore
from podium.testing import (
    FOREVER_MS,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    eventually,
    get_run,
    run_to_end,
    start_run,
)
from podium.v1 import execution_service_pb2, run_pb2

R = run_pb2
X = execution_service_pb2


QUICK = {"steps": [echo_step("a"), echo_step("b", "a")]}


SLOW = {"steps": [echo_step("slow", delay_ms=FOREVER_MS)]}


TABLES = ("runs", "steps", "attempts", "events")


class ManualClock:
    """A Clock whose time moves only when someone sleeps on it."""

    def __init__(self, now: float) -> None:
        self.time = now
        self.sleeps = 0

    def now(self) -> float:
        return self.time

    def monotonic(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.time += seconds
        self.sleeps += 1
        await asyncio.sleep(0.005)  # let the pass's database work proceed

    def timer(self, due: float) -> asyncio.Future[None]:
        # Time moves for a timer as for a sleep: at once, to its due time.
        self.time = max(self.time, due)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def rows_of(db_path: str, run_name: str) -> dict[str, int]:
    """Rows per table for one run, read through a separate SQLite connection."""
    run_id = run_name.removeprefix("runs/")
    with sqlite3.connect(db_path) as conn:
        return {
            table: conn.execute(
                f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
            for table in TABLES
        }


async def listed(stubs: Stubs) -> list[str]:
    response = await stubs.executions.ListRuns(X.ListRunsRequest(page_size=1000))
    return [run.name for run in response.runs]


async def assert_gone(stubs: Stubs, db_path: str, name: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as get:
        await get_run(stubs, name)
    assert get.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as watch:
        await collect_events(stubs, name)
    assert watch.value.code() == grpc.StatusCode.NOT_FOUND
    assert name not in await listed(stubs)
    assert rows_of(db_path, name) == dict.fromkeys(TABLES, 0)


async def test_prune_once_deletes_old_finished_runs_and_keeps_the_rest(
    server: PodiumServer, stubs: Stubs, db_path: str
) -> None:
    await create_workflow(stubs, "quick", QUICK)
    await create_workflow(stubs, "slow", SLOW)
    old = [(await run_to_end(stubs, "quick"))[0] for _ in range(5)]
    await asyncio.sleep(0.05)
    boundary = time.time()
    await asyncio.sleep(0.05)
    recent, _ = await run_to_end(stubs, "quick")
    unfinished = await start_run(stubs, "slow")
    max_age = 3600.0
    # Runs that ended before `boundary` are now older than max_age; the rest are not.
    clock = ManualClock(boundary + max_age)
    pruner = Pruner(server.store, server.engine.active, max_age, 60.0, clock=clock, page_size=2)

    assert await pruner.prune_once() == len(old)

    for run in old:
        await assert_gone(stubs, db_path, run.name)
    assert await get_run(stubs, recent.name) == recent
    assert (await get_run(stubs, unfinished.name)).state != R.RUN_STATE_SUCCEEDED
    assert await pruner.prune_once() == 0
    await stubs.executions.CancelRun(X.CancelRunRequest(name=unfinished.name))


async def test_pruner_runs_every_interval_on_its_clock(
    server: PodiumServer, stubs: Stubs, db_path: str
) -> None:
    await create_workflow(stubs, "quick", QUICK)
    run, _ = await run_to_end(stubs, "quick")
    clock = ManualClock(time.time())
    pruner = Pruner(server.store, server.engine.active, 100.0, 60.0, clock=clock)
    pruner.start()
    try:

        async def deleted() -> bool:
            return rows_of(db_path, run.name)["runs"] == 0

        await eventually(deleted)
    finally:
        await pruner.stop()
    # Passes at +0 and +60 find it too young; the one at +120 deletes it.
    assert clock.sleeps >= 2
    await assert_gone(stubs, db_path, run.name)
    await pruner.stop()  # stopping twice is harmless


def test_default_interval_is_a_tenth_of_the_age_within_bounds() -> None:
    assert default_interval(30 * 86400) == 3600
    assert default_interval(600) == 60
    assert default_interval(3) == 1


async def test_a_pass_deletes_a_rerun_batch_with_its_last_original(tmp_path: Path) -> None:
    # The RerunRuns record outlives its originals by no pass: deleted in the
    # pass that deletes the last run it names, kept while one is left.
    store = SqliteStore(str(tmp_path / "podium.db"))
    await store.open()
    try:
        clock = ManualClock(10_000.0)
        for run_id, end_time in (("old", 100.0), ("young", 9_000.0)):
            store.put_run(
                RunRecord(
                    run_id=run_id,
                    workflow_id="w",
                    workflow_version=1,
                    state=RunState.SUCCEEDED,
                    input={},
                    create_time=end_time - 1,
                    end_time=end_time,
                )
            )
        store.put_rerun_batch(RerunBatchRecord("t", "both", "h", ["old", "young"], 200.0))
        store.put_rerun_batch(RerunBatchRecord("t", "old-only", "h", ["old"], 200.0))
        await store.commit()
        pruner = Pruner(store, set(), max_age=5_000.0, interval=1.0, clock=clock)

        assert await pruner.prune_once() == 1
        assert await store.get_rerun_batch("old-only", tenant="t") is None
        assert await store.get_rerun_batch("both", tenant="t") is not None

        clock.time = 20_000.0
        assert await pruner.prune_once() == 1
        assert await store.get_rerun_batch("both", tenant="t") is None
    finally:
        await store.close()
