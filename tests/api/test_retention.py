"""DeleteRun through real gRPC: a finished run goes with its steps and events,
anything else is refused and nothing is deleted. The age-based Pruner is in
tests/unit/engine/test_retention.py."""

from __future__ import annotations

import sqlite3

import grpc
import pytest

from podium.testing import (
    FOREVER_MS,
    Stubs,
    collect_events,
    create_workflow,
    echo_step,
    error_info,
    field_violations,
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
