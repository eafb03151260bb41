"""Retention through real gRPC: DeleteRun, the age-based Pruner, and the
validation of ResolveApproval requests (which never reaches the engine)."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import grpc
import pytest

from podium.engine.retention import Pruner, default_interval
from podium.server.app import PodiumServer, start_server
from podium.testing import (
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    error_info,
    eventually,
    field_violations,
    get_run,
    run_to_end,
    start_run,
)
from podium.v1 import event_pb2, execution_service_pb2, run_pb2

E = event_pb2
R = run_pb2
X = execution_service_pb2

QUICK = {"steps": [echo_step("a"), echo_step("b", "a")]}
SLOW = {"steps": [echo_step("slow", delay_ms=2000)]}
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


# -- DeleteRun ----------------------------------------------------------------------------


async def test_delete_run_removes_a_finished_run_with_its_steps_and_events(
    stubs: Stubs, db_path: str
) -> None:
    await create_workflow(stubs, "quick", QUICK)
    doomed, _ = await run_to_end(stubs, "quick")
    kept, _ = await run_to_end(stubs, "quick")
    before = rows_of(db_path, doomed.name)
    assert all(before[table] > 0 for table in TABLES), before

    response = await stubs.executions.DeleteRun(X.DeleteRunRequest(name=doomed.name))

    assert response == X.DeleteRunResponse()
    await assert_gone(stubs, db_path, doomed.name)
    assert await get_run(stubs, kept.name) == kept
    assert kept.name in await listed(stubs)
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await stubs.executions.DeleteRun(X.DeleteRunRequest(name=doomed.name))
    assert again.value.code() == grpc.StatusCode.NOT_FOUND


async def test_delete_run_refuses_a_running_run_and_deletes_nothing(
    stubs: Stubs, db_path: str
) -> None:
    await create_workflow(stubs, "slow", SLOW)
    run = await start_run(stubs, "slow")

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stubs.executions.DeleteRun(X.DeleteRunRequest(name=run.name))

    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error.value).reason == "RUN_NOT_FINISHED"
    assert (await get_run(stubs, run.name)).state in (R.RUN_STATE_PENDING, R.RUN_STATE_RUNNING)
    assert run.name in await listed(stubs)
    await stubs.executions.CancelRun(X.CancelRunRequest(name=run.name))
    # Once it has ended it can go.
    await stubs.executions.DeleteRun(X.DeleteRunRequest(name=run.name))
    await assert_gone(stubs, db_path, run.name)


async def test_delete_run_of_an_unknown_run_is_not_found(stubs: Stubs) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stubs.executions.DeleteRun(X.DeleteRunRequest(name="runs/nope"))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(error.value).reason == "RUN_NOT_FOUND"


@pytest.mark.parametrize("name", ["", "nope", "workflows/x", "runs/a/b"])
async def test_delete_run_with_a_bad_name_is_invalid(stubs: Stubs, name: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stubs.executions.DeleteRun(X.DeleteRunRequest(name=name))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in field_violations(error.value)] == ["name"]


# -- Pruner -------------------------------------------------------------------------------


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
    pruner = Pruner(server.engine, max_age, 60.0, clock=clock, page_size=2)

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
    pruner = Pruner(server.engine, 100.0, 60.0, clock=clock)
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


async def test_start_server_with_retention_starts_and_stops_a_pruner(db_path: str) -> None:
    served = await start_server("127.0.0.1:0", db_path, retention_seconds=600)
    try:
        assert served.pruner is not None
        assert (served.pruner.max_age, served.pruner.interval) == (600, 60)
    finally:
        await served.stop(0.5)
    without = await start_server("127.0.0.1:0", db_path, retention_seconds=0)
    try:
        assert without.pruner is None
    finally:
        await without.stop(0.5)
    with pytest.raises(ValueError):
        await start_server("127.0.0.1:0", db_path, retention_seconds=-1)


# -- ResolveApproval validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("approval", "fields"),
    [
        (
            X.ResolveApprovalRequest(
                run="nope", step_id="ok", decision=E.APPROVAL_DECISION_APPROVE
            ),
            ["run"],
        ),
        (X.ResolveApprovalRequest(run="runs/x", decision=E.APPROVAL_DECISION_REJECT), ["step_id"]),
        (X.ResolveApprovalRequest(run="runs/x", step_id="ok"), ["decision"]),
        (
            X.ResolveApprovalRequest(
                run="runs/x", step_id="ok", decision=E.ApprovalDecision.ValueType(9)
            ),
            ["decision"],
        ),
        (X.ResolveApprovalRequest(), ["run", "step_id", "decision"]),
    ],
)
async def test_resolve_approval_rejects_bad_requests_with_their_fields(
    stubs: Stubs, approval: X.ResolveApprovalRequest, fields: list[str]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stubs.executions.ResolveApproval(approval)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in field_violations(error.value)] == fields
